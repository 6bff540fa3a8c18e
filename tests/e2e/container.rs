//! The container image, built and run as far as this machine allows: Debian's podman builds a
//! `FROM scratch` image with no registry, but cannot pull the Dockerfile's build stage's base
//! image nor run a container here (cgroups). So this test
//! 1. builds the static binary on the host with the build stage's command (the musl target,
//!    debug profile), and lays out what that stage leaves in `/out`;
//! 2. builds the Dockerfile's runtime stage itself (its text, with `--from=build /out/` read from
//!    that layout) with podman, and checks the image: non-root user, entrypoint, volume;
//! 3. exports the image's files (`podman create` + `podman export`) and runs the hub from them as
//!    the image's user would: chrooted into them, as uid 10001, with the image's environment
//!    (the port mapped elsewhere, as `-p` would) and the master key from a mounted file;
//! 4. posts a webhook signed with the shipped hub.toml's demo key, and reads its record back.

#[allow(dead_code)]
mod util;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use plugin_sdk::schemes::sign_retell;
use serde_json::{Value, json};

use util::{free_port, now_ms, wait_for};

/// The shipped hub.toml's demo master key (README) and abc-healthcare's demo Retell key.
const DEMO_KEY: &str = "hubkey:v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const RETELL_KEY: &str = "key_demo_abc_healthcare_0000000";
const DEMO_ADMIN: &str = "demo-admin-token";
const USER: u32 = 10001;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The target directory this test was built in (`.../target/debug/deps/this`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// podman with its own storage in `dir` (vfs: no overlay mounts needed), so the test leaves
/// nothing behind.
fn podman(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs"]);
    c
}

/// The static binary, as the build stage makes it (there with `--release`).
fn static_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(root())
        .env("CARGO_TARGET_DIR", target_dir())
        .args([
            "build",
            "--locked",
            "--target",
            "x86_64-unknown-linux-musl",
            "-p",
            "hub",
            "--bin",
            "hub",
        ]));
    target_dir().join("x86_64-unknown-linux-musl/debug/hub")
}

/// The Dockerfile's runtime stage, reading what it copies from the build stage out of `out/`.
fn runtime_stage() -> String {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let start = dockerfile
        .find("FROM scratch AS hub")
        .expect("the Dockerfile's runtime stage");
    let stage = &dockerfile[start..];
    assert_eq!(stage.matches("--from=build /out/").count(), 4, "{stage}");
    stage.replace("--from=build /out/", "out/")
}

#[test]
fn the_image_runs_the_hub_as_its_user_from_a_static_binary_on_scratch() {
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "this test chroots into the image's files as uid {USER}: it runs as root (as .ci/run does)"
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // 1. What the build stage leaves in /out.
    let binary = static_binary();
    let out = dir.join("context/out");
    std::fs::create_dir_all(out.join("data")).unwrap();
    std::fs::copy(&binary, out.join("hub")).unwrap();
    std::fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        out.join("ca-certificates.crt"),
    )
    .unwrap();
    std::fs::copy(root().join("hub.toml"), out.join("hub.toml")).unwrap();
    std::fs::write(dir.join("context/Containerfile"), runtime_stage()).unwrap();

    // 2. The runtime stage, built by podman; the image says how it runs.
    run(podman(dir)
        .args(["build", "-q", "-t", "localhost/hub-under-test", "-f"])
        .arg(dir.join("context/Containerfile"))
        .arg(dir.join("context")));
    let config: Value = serde_json::from_str(&run(podman(dir).args([
        "image",
        "inspect",
        "localhost/hub-under-test",
        "--format",
        "{{json .Config}}",
    ])))
    .unwrap();
    assert_eq!(config["User"], "10001:10001", "{config:#}");
    assert_eq!(config["Entrypoint"], json!(["/hub"]));
    assert_eq!(config["Cmd"], json!(["serve"]));
    assert!(config["Volumes"].get("/data").is_some(), "{config:#}");
    let env: Vec<(String, String)> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str()?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let image_env = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(image_env("HUB_LISTEN").as_deref(), Some("0.0.0.0:8080"));
    assert_eq!(image_env("HUB_DATA_DIR").as_deref(), Some("/data"));

    // 3. The image's files, as a container would see them.
    run(podman(dir).args(["create", "--name", "hub-files", "localhost/hub-under-test"]));
    let tar = dir.join("image.tar");
    run(podman(dir).args(["export", "hub-files", "-o"]).arg(&tar));
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    run(Command::new("tar")
        .arg("-xpf")
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs)
        .arg("--same-owner"));
    let mut files: Vec<String> = walk(&rootfs);
    files.sort();
    assert_eq!(
        files,
        [
            "data/",
            "etc/",
            "etc/hub/",
            "etc/hub/hub.toml",
            "etc/ssl/",
            "etc/ssl/certs/",
            "etc/ssl/certs/ca-certificates.crt",
            "hub",
        ],
        "the image holds the binary, its CA roots and config, and the data volume: nothing else"
    );
    assert_eq!(std::fs::metadata(rootfs.join("data")).unwrap().uid(), USER);
    // A mounted secret: the master key as a file only the image's user reads.
    let secrets = rootfs.join("run/secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let key_file = secrets.join("hub_master_key");
    std::fs::write(&key_file, DEMO_KEY).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o400)).unwrap();
    std::os::unix::fs::chown(&key_file, Some(USER), Some(USER)).unwrap();

    // 4. The hub, as the image's user, chrooted into its files: no libc, no shell, nothing else.
    let port = free_port();
    let mut hub = Command::new("chroot")
        .arg(format!("--userspec={USER}:{USER}"))
        .arg(&rootfs)
        .arg("/hub")
        .args(
            config["Cmd"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap()),
        )
        .env_clear()
        .envs(env.iter().filter(|(k, _)| k != "HUB_LISTEN").cloned())
        .env("HUB_LISTEN", format!("0.0.0.0:{port}"))
        .env("HUB_MASTER_KEY_FILE", "/run/secrets/hub_master_key")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(hub.stdout.take().unwrap());
    let stderr = hub.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let mut listening = false;
    for line in stdout.lines().map_while(Result::ok) {
        if line.starts_with("listening on") {
            listening = true;
            break;
        }
    }
    assert!(listening, "the hub did not start: {}", log.lock().unwrap());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let record = rt.block_on(async {
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let body = serde_json::to_vec(&json!({
            "event": "call_analyzed",
            "call": { "call_id": "call_in_a_container", "agent_id": "agent_abc_front_desk",
                      "call_status": "ended", "direction": "inbound", "from_number": "+14155550100",
                      "duration_ms": 65000, "transcript": "Agent: ABC Healthcare.",
                      "call_analysis": { "call_summary": "Booked a visit.", "user_sentiment": "Positive",
                                         "call_successful": true } }
        }))
        .unwrap();
        let answer = client
            .post(format!("{base}/hooks/abc-healthcare/retell"))
            .header("x-retell-signature", sign_retell(RETELL_KEY.as_bytes(), &body, now_ms()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        wait_for(60, "the call's record", || async {
            let v: Value = client
                .get(format!("{base}/api/v1/tenants/abc-healthcare/records?kind=call"))
                .bearer_auth(DEMO_ADMIN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            v["records"]
                .as_array()?
                .iter()
                .find(|r| r["key"] == "call_in_a_container")
                .cloned()
        })
        .await
    });
    assert_eq!(
        record["data"]["call_id"], "call_in_a_container",
        "{record:#}"
    );
    let _ = hub.kill();
    let _ = hub.wait();
    // A bad override is refused at start, naming the variable.
    let out = Command::new("chroot")
        .arg(format!("--userspec={USER}:{USER}"))
        .arg(&rootfs)
        .args(["/hub", "check"])
        .env_clear()
        .envs(env.iter().cloned())
        .env("HUB_LISTEN", "not-an-address")
        .env("HUB_MASTER_KEY_FILE", "/run/secrets/hub_master_key")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("HUB_LISTEN"),
        "{said}"
    );
    // Its state is in the volume, the image's user's.
    let db = rootfs.join("data/hub.db");
    assert_eq!(std::fs::metadata(&db).unwrap().uid(), USER);
    let _ = run(podman(dir).args(["rm", "hub-files"]));
    let _ = run(podman(dir).args(["rmi", "localhost/hub-under-test"]));
}

/// Every path under `root`, relative, directories with a trailing `/`.
fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else {
                out.push(rel);
            }
        }
    }
    out
}
