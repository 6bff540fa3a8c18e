//! In-place edits of hub.toml: sealing a value into it (comments and layout kept, plaintext refused) and rekeying every value, all or nothing.

use super::*;
use crate::secrets;

fn write_example(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    path
}

fn open_at(path: &Path, key: &MasterKey, tenant: &str, connector: &str) -> String {
    let vault = Config::from_file(path).unwrap().open_vault(key).unwrap();
    let value = vault.get(&id(tenant), &id(connector), "api_key").unwrap();
    String::from_utf8(value.expose_secret().to_vec()).unwrap()
}

#[test]
fn set_sealed_keeps_comments_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_example(&dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::Permissions::from_mode(0o640);
        std::fs::set_permissions(&path, mode).unwrap();
    }
    let key = test_key();

    // Replace an existing value.
    let place = Place::Tenant {
        tenant: "abc-healthcare".into(),
        connector: "retell".into(),
        field: "api_key".into(),
    };
    edit::set_sealed(&path, &place, &secrets::seal(&key, &place, b"new-abc")).unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    let changed: Vec<_> = EXAMPLE
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].1.starts_with("api_key = \"sealed:v1:"));
    assert_eq!(after.lines().count(), EXAMPLE.lines().count());
    assert_eq!(open_at(&path, &key, "abc-healthcare", "retell"), "new-abc");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    // Replacing the server token keeps its trailing comment.
    std::fs::write(&path, format!("{MINIMAL}admin_token = \"x\" # the token\n")).unwrap();
    let server = Place::Server {
        field: "admin_token".into(),
    };
    edit::set_sealed(&path, &server, &secrets::seal(&key, &server, b"t")).unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(MINIMAL), "{after}");
    assert!(after.contains("\" # the token\n"), "{after}");
}

#[test]
fn set_sealed_creates_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_example(&dir);
    let key = test_key();
    for (tenant, connector) in [("xyz-dental", "retell"), ("abc-healthcare", "resend")] {
        let place = Place::Tenant {
            tenant: tenant.into(),
            connector: connector.into(),
            field: "api_key".into(),
        };
        let sealed = secrets::seal(&key, &place, format!("{tenant}-{connector}").as_bytes());
        edit::set_sealed(&path, &place, &sealed).unwrap();
    }
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(&EXAMPLE[..EXAMPLE.find("[tenants.abc").unwrap()]));
    assert_eq!(
        open_at(&path, &key, "xyz-dental", "retell"),
        "xyz-dental-retell"
    );
    // The inline `credentials = { .. }` table was extended in place.
    assert_eq!(
        open_at(&path, &key, "abc-healthcare", "resend"),
        "abc-healthcare-resend"
    );
    assert!(
        !after.contains("[tenants.abc-healthcare.connectors.resend.credentials]"),
        "{after}"
    );
}

#[test]
fn set_sealed_refuses_plaintext_and_non_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_example(&dir);
    let place = Place::Global {
        connector: "retell".into(),
        field: "api_key".into(),
    };
    let err = edit::set_sealed(&path, &place, "plaintext").unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Secret {
            error: SecretError::NotSealed,
            ..
        }
    ));
    let odd = Place::Tenant {
        tenant: "ABC Corp".into(),
        connector: "retell".into(),
        field: "api_key".into(),
    };
    let sealed = secrets::seal(&test_key(), &odd, b"x");
    let msg = edit::set_sealed(&path, &odd, &sealed)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("invalid tenant id"), "{msg}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), EXAMPLE);
    std::fs::write(&path, format!("{MINIMAL}[tenants.t]\nconnectors = 5\n")).unwrap();
    let bad = Place::Tenant {
        tenant: "t".into(),
        connector: "retell".into(),
        field: "x".into(),
    };
    let sealed = secrets::seal(&test_key(), &bad, b"x");
    let msg = edit::set_sealed(&path, &bad, &sealed)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tenants.t.connectors: expected a table"),
        "{msg}"
    );
    assert!(msg.contains(":4:14:"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{MINIMAL}[tenants.t]\nconnectors = 5\n")
    );
}

#[test]
fn rekey_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_example(&dir);
    let new = MasterKey::generate();
    assert_eq!(edit::rekey(&path, &test_key(), &new).unwrap(), 4);

    let after = std::fs::read_to_string(&path).unwrap();
    for (before, now) in EXAMPLE.lines().zip(after.lines()) {
        if !before.contains("sealed:v1:") {
            assert_eq!(before, now);
        }
    }
    assert_eq!(after.lines().count(), EXAMPLE.lines().count());
    let config = Config::from_file(&path).unwrap();
    assert!(config.open_vault(&test_key()).is_err());
    let vault = config.open_vault(&new).unwrap();
    let get = |t: &str, c: &str| {
        let v = vault.get(&id(t), &id(c), "api_key").unwrap();
        v.expose_secret().to_vec()
    };
    assert_eq!(get("abc-healthcare", "retell"), b"example-retell-abc-key");
    assert_eq!(get("abc-healthcare", "resend"), b"example-resend-abc-key");
    assert_eq!(get("xyz-dental", "retell"), b"example-retell-global-key");
    assert_eq!(
        vault.admin_token().unwrap().expose_secret(),
        b"example-admin-token"
    );
}

#[test]
fn rekey_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    let place = Place::Tenant {
        tenant: "xyz-dental".into(),
        connector: "retell".into(),
        field: "api_key".into(),
    };
    let stranger = secrets::seal(&MasterKey::generate(), &place, b"x");
    let text = format!(
        "{EXAMPLE}[tenants.xyz-dental.connectors.retell.credentials]\napi_key = \"{stranger}\"\n"
    );
    std::fs::write(&path, &text).unwrap();
    let err = edit::rekey(&path, &test_key(), &MasterKey::generate()).unwrap_err();
    let line = text.lines().count();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:{line}:11: tenants.xyz-dental.connectors.retell.credentials.api_key: cannot open: wrong master key, or the value was sealed for another place",
            path.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file left behind");
}
