//! Sealing, opening, the master key and the vault, tested.

use super::*;

fn place() -> Place {
    Place::Tenant {
        tenant: "abc-healthcare".into(),
        connector: "retell".into(),
        field: "api_key".into(),
    }
}

#[test]
fn round_trip() {
    let key = MasterKey::generate();
    let sealed = seal(&key, &place(), b"key_live_123");
    assert!(sealed.starts_with(SEALED_PREFIX));
    assert!(!sealed.contains("key_live_123"));
    let opened = open(&key, &place(), &sealed).unwrap();
    assert_eq!(opened.expose_secret(), b"key_live_123");
    // Random nonces: sealing twice gives different strings.
    assert_ne!(sealed, seal(&key, &place(), b"key_live_123"));
    let empty = seal(&key, &place(), b"");
    assert_eq!(open(&key, &place(), &empty).unwrap().expose_secret(), b"");
}

#[test]
fn moved_value_does_not_open() {
    let key = MasterKey::generate();
    let sealed = seal(&key, &place(), b"secret");
    let elsewhere = [
        Place::Tenant {
            tenant: "other".into(),
            connector: "retell".into(),
            field: "api_key".into(),
        },
        Place::Global {
            connector: "retell".into(),
            field: "api_key".into(),
        },
        Place::Server {
            field: "api_key".into(),
        },
    ];
    for other in elsewhere {
        assert!(matches!(
            open(&key, &other, &sealed),
            Err(SecretError::CannotOpen)
        ));
    }
    // Length prefixes keep names from sliding into each other.
    let a = Place::Global {
        connector: "ab".into(),
        field: "c".into(),
    };
    let b = Place::Global {
        connector: "a".into(),
        field: "bc".into(),
    };
    assert_ne!(a.aad(), b.aad());
}

#[test]
fn wrong_key_says_so() {
    let sealed = seal(&MasterKey::generate(), &place(), b"secret");
    let err = open(&MasterKey::generate(), &place(), &sealed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot open: wrong master key, or the value was sealed for another place"
    );
}

#[test]
fn tampered_value_does_not_open() {
    let key = MasterKey::generate();
    let sealed = seal(&key, &place(), b"secret");
    let mut raw = URL_SAFE_NO_PAD
        .decode(&sealed[SEALED_PREFIX.len()..])
        .unwrap();
    for i in [0, NONCE_LEN, raw.len() - 1] {
        raw[i] ^= 1;
        let bad = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw));
        assert!(matches!(
            open(&key, &place(), &bad),
            Err(SecretError::CannotOpen)
        ));
        raw[i] ^= 1;
    }
}

#[test]
fn format_errors() {
    let key = MasterKey::generate();
    let err = open(&key, &place(), "hunter2").unwrap_err();
    assert!(matches!(err, SecretError::NotSealed));
    assert!(err.to_string().contains("hub seal"));
    assert!(!err.to_string().contains("hunter2"));
    assert!(matches!(
        open(&key, &place(), "sealed:v9:AAAA"),
        Err(SecretError::UnknownVersion)
    ));
    assert!(matches!(
        check_format("sealed:v1:not base64!"),
        Err(SecretError::Malformed { .. })
    ));
    assert!(matches!(
        check_format("sealed:v1:AAAA"),
        Err(SecretError::Malformed {
            reason: "too short"
        })
    ));
    assert!(check_format(&seal(&key, &place(), b"x")).is_ok());
}

#[test]
fn key_text_round_trip() {
    let key = MasterKey::generate();
    let text = key.to_text();
    assert!(text.expose_secret().starts_with(KEY_PREFIX));
    assert_eq!(text.expose_secret().len(), KEY_PREFIX.len() + KEY_B64_LEN);
    let again = MasterKey::parse(&format!("{}\n", text.expose_secret())).unwrap();
    assert_eq!(again.0.expose_secret(), key.0.expose_secret());

    let hex_text = hex::encode(key.0.expose_secret());
    let from_hex = MasterKey::parse(&hex_text.to_uppercase()).unwrap();
    assert_eq!(from_hex.0.expose_secret(), key.0.expose_secret());
}

#[test]
fn bad_key_text() {
    let cases = [
        ("", "empty"),
        ("hubkey:v1:abc", "expected 43 base64url characters"),
        (
            "hubkey:v1:!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "not valid base64url",
        ),
        (
            "hubkey:v2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "unknown key version",
        ),
        ("0123456789abcdef", "64 hex digits"),
        ("correct horse battery staple", "64 hex digits"),
    ];
    for (input, expected) in cases {
        let msg = MasterKey::parse(input).unwrap_err().to_string();
        assert!(msg.contains(expected), "{input:?}: {msg}");
        if !input.is_empty() {
            assert!(!msg.contains(input), "echoed input: {msg}");
        }
    }
}

#[cfg(unix)]
#[test]
fn key_file_permissions() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.key");
    let key = MasterKey::generate();
    std::fs::write(&path, format!("{}\n", key.to_text().expose_secret())).unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let msg = MasterKey::load(None, Some(&path)).unwrap_err().to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("0644") && msg.contains("chmod 600"), "{msg}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let loaded = MasterKey::load(None, Some(&path)).unwrap();
    assert_eq!(loaded.0.expose_secret(), key.0.expose_secret());
}

#[test]
fn load_prefers_env_and_needs_a_source() {
    let key = MasterKey::generate();
    let text = key.to_text();
    let missing = Path::new("/nonexistent/hub.key");
    let loaded = MasterKey::load(Some(text.expose_secret()), Some(missing)).unwrap();
    assert_eq!(loaded.0.expose_secret(), key.0.expose_secret());

    let msg = MasterKey::load(None, None).unwrap_err().to_string();
    assert!(msg.contains("HUB_MASTER_KEY") && msg.contains("server.master_key_file"));

    let msg = MasterKey::load(Some("nope"), None).unwrap_err().to_string();
    assert!(
        msg.starts_with("invalid master key in HUB_MASTER_KEY"),
        "{msg}"
    );
}

#[test]
fn debug_shows_no_secrets() {
    let key = MasterKey::parse(&"ab".repeat(32)).unwrap();
    let key_debug = format!("{key:?}");
    assert_eq!(key_debug, "MasterKey(..)");

    let mut vault = Vault::new();
    vault.insert(place(), SecretSlice::from(b"topsecret".to_vec()));
    let debug = format!("{vault:?}");
    assert!(debug.contains("tenants.abc-healthcare.connectors.retell.credentials.api_key"));
    assert!(!debug.contains("topsecret"));
    assert!(!debug.contains("116, 111, 112"), "{debug}"); // "top" as bytes
}

#[test]
fn vault_falls_back_to_global() {
    let mut vault = Vault::new();
    vault.insert(place(), SecretSlice::from(b"own".to_vec()));
    vault.insert(
        Place::Global {
            connector: "retell".into(),
            field: "api_key".into(),
        },
        SecretSlice::from(b"global".to_vec()),
    );
    let id = |t: &str| TenantId::try_from(t).unwrap();
    let (retell, resend) = (
        ConnectorId::try_from("retell").unwrap(),
        ConnectorId::try_from("resend").unwrap(),
    );
    let get = |t: &str| {
        vault
            .get(&id(t), &retell, "api_key")
            .map(|v| v.expose_secret().to_vec())
    };
    assert_eq!(get("abc-healthcare").as_deref(), Some(&b"own"[..]));
    assert_eq!(get("other").as_deref(), Some(&b"global"[..]));
    assert!(vault.get(&id("other"), &resend, "api_key").is_none());
    assert_eq!(vault.len(), 2);
}
