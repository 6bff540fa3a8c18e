//! Lookups: the keys other than its own that a record can be found by (`record-set-lookups`,
//! `record-find`), written the same way by every connector so one connector finds what another
//! stored. A HubSpot contact with the phone `+1 (415) 555-0100` and a Retell caller
//! `+14155550100` meet at `phone:+14155550100`.

/// The lookup of a phone number in E.164 form: `phone:+` and its digits.
///
/// Spaces, dots, dashes, slashes and parentheses are dropped, and a leading `00` counts as `+`.
/// `None` for a number without its country code (nothing says which country it is in), with
/// letters or an extension, or with fewer than 7 or more than 15 digits.
pub fn phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let rest = raw.strip_prefix('+').or_else(|| raw.strip_prefix("00"))?;
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '/' | '(' | ')' | '\u{a0}' => {}
            _ => return None,
        }
    }
    let ok = (7..=15).contains(&digits.len()) && !digits.starts_with('0');
    ok.then(|| format!("phone:+{digits}"))
}

/// The lookup of an email address: `email:` and the address as [`normalize_email`] writes it.
pub fn email(raw: &str) -> Option<String> {
    normalize_email(raw).map(|e| format!("email:{e}"))
}

/// A plausible email address, trimmed and lower-cased: one `@` with something before it, a
/// domain with a dot that neither starts nor ends it, no spaces or control characters, at most
/// 254 bytes. `None` otherwise.
pub fn normalize_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.len() <= 254;
    ok.then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_in_any_common_shape_meet_in_e164() {
        for raw in [
            "+14155550100",
            "+1 (415) 555-0100",
            "+1.415.555.0100",
            " +1 415 555 0100 ",
            "0014155550100",
            "+1-415/555-0100",
        ] {
            assert_eq!(phone(raw).as_deref(), Some("phone:+14155550100"), "{raw}");
        }
        assert_eq!(
            phone("+44 20 7946 0958").as_deref(),
            Some("phone:+442079460958")
        );
    }

    #[test]
    fn phones_without_a_country_or_with_letters_are_not_lookups() {
        for raw in [
            "",
            "+",
            "(415) 555-0100",
            "4155550100",
            "+1 415 555 0100 ext 12",
            "+1 415 CALL NOW",
            "+123456",
            "+1234567890123456",
            "+0 415 555 0100",
        ] {
            assert_eq!(phone(raw), None, "{raw}");
        }
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            email("  Jane.Doe@Example.COM ").as_deref(),
            Some("email:jane.doe@example.com")
        );
        for raw in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane@example",
            "ja ne@x.io",
            "a@b@c.io",
            "jane@.io",
        ] {
            assert_eq!(email(raw), None, "{raw}");
        }
    }
}
