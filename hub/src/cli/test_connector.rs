//! `hub test-connector`: runs a connector's `.wasm` through the real runtime over recorded
//! fixtures (`hub::fixtures`) and checks what each produced against its golden file
//! (`NAME.out.json`), or writes the golden files (`--update`). Part of the binary only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use hub::fixtures::Fixture;
use hub::fixtures::run::{Limits, Runner, fixture_files, golden_path, per_fixture};

/// How to run.
pub struct Options {
    pub wasm: PathBuf,
    pub fixtures: PathBuf,
    pub update: bool,
    pub print: bool,
    pub limits: Limits,
}

pub fn test_connector(options: Options) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(&options.wasm)
        .with_context(|| format!("cannot read {}", options.wasm.display()))?;
    let files = fixture_files(&options.fixtures)?;
    if files.is_empty() {
        anyhow::bail!(
            "{} holds no fixtures (NAME.json; `hub deliveries --id N --export FILE` writes one)",
            options.fixtures.display()
        );
    }
    // Fixtures parse first, so a typo is reported before anything runs.
    let mut fixtures = Vec::with_capacity(files.len());
    for f in &files {
        fixtures.push(Fixture::read(f)?);
    }
    // The compile cache outlives the run (a warm cache compiles nothing); the store does not.
    let cache = std::env::temp_dir().join("hub-test-connector");
    let work = cache.join(format!("run-{}", std::process::id()));
    hub::files::private_dir(&cache)
        .and_then(|()| hub::files::private_dir(&work))
        .with_context(|| format!("cannot create {}", work.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = rt.block_on(run_all(&options, &wasm, &cache, &work, &files, &fixtures));
    let _ = std::fs::remove_dir_all(&work);
    outcome
}

async fn run_all(
    options: &Options,
    wasm: &[u8],
    cache: &Path,
    work: &Path,
    files: &[PathBuf],
    fixtures: &[Fixture],
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let runner = Runner::new_in(cache, work, wasm, &options.limits)
        .await
        .with_context(|| format!("loading {}", options.wasm.display()))?;
    let loaded = started.elapsed();
    let (mut passed, mut failed, mut written) = (0usize, 0usize, 0usize);
    let mut busy = Duration::ZERO;
    let all = Instant::now();
    for (i, (file, fixture)) in files.iter().zip(fixtures).enumerate() {
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let ran = runner
            .run(fixture, i as u64 + 1)
            .await
            .map_err(|problem| anyhow::anyhow!("{}: {problem}", file.display()))?;
        busy += ran.elapsed;
        if let Some(refused) = ran.output.get("refused").and_then(|r| r.as_str()) {
            // The hub would answer 401: the fixture fails, whatever its golden file says.
            failed += 1;
            println!("FAIL {name}: {refused}");
            continue;
        }
        let text = serde_json::to_string_pretty(&ran.output)? + "\n";
        let golden = golden_path(file);
        if options.print {
            println!("== {name}\n{text}");
        }
        if options.update {
            hub::files::write_private(&golden, text.as_bytes())
                .with_context(|| format!("cannot write {}", golden.display()))?;
            written += 1;
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Err(_) => {
                failed += 1;
                println!(
                    "MISSING {name}: no {} (run with --update to write it)\n{text}",
                    golden.display()
                );
            }
            Ok(expected) => {
                let same = serde_json::from_str::<serde_json::Value>(&expected)
                    .is_ok_and(|v| v == ran.output);
                if same {
                    passed += 1;
                } else {
                    failed += 1;
                    println!("FAIL {name}: differs from {}", golden.display());
                    let diff = similar::TextDiff::from_lines(expected.as_str(), text.as_str());
                    print!(
                        "{}",
                        diff.unified_diff()
                            .context_radius(3)
                            .header("expected", "produced")
                    );
                }
            }
        }
    }
    let total = all.elapsed();
    let n = fixtures.len();
    if options.update {
        let files = if written == 1 { "file" } else { "files" };
        println!(
            "wrote {written} golden {files} in {}",
            options.fixtures.display()
        );
    } else {
        let fixtures = if n == 1 { "fixture" } else { "fixtures" };
        println!("{n} {fixtures}: {passed} passed, {failed} failed");
    }
    println!(
        "{} ({} in the sandbox), {:.1} ms to load the connector",
        per_fixture(total, n),
        per_fixture(busy, n),
        loaded.as_secs_f64() * 1000.0
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
