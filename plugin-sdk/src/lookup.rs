//! Lookups: the keys other than its own that a record can be found by (`record-set-lookups`,
//! `record-find`), written the same way by every connector so one connector finds what another
//! stored. A HubSpot contact with the phone `+1 (415) 555-0100` and a Retell caller
//! `+14155550100` meet at `phone:+14155550100`.

/// What a national number's lookup starts with until the hub writes it in E.164.
///
/// ```
/// assert!(plugin_sdk::lookup::phone("(415) 555-0100").unwrap().starts_with(plugin_sdk::lookup::NATIONAL));
/// ```
pub const NATIONAL: &str = "phone:national:";

/// The lookup of a phone number in E.164 form: `phone:+` and its digits.
///
/// Spaces, dots, dashes, slashes and parentheses are dropped, and a leading `00` counts as `+`.
/// A number without its country code becomes `phone:national:` and its digits: the hub writes it
/// in E.164 with the tenant's `phone_country_code` ([`resolve`]), and drops it for a tenant
/// without one. `None` for a number with letters or an extension, or with fewer than 7 or more
/// than 15 digits.
///
/// ```
/// use plugin_sdk::lookup::phone;
/// assert_eq!(phone("+1 (415) 555-0100").as_deref(), Some("phone:+14155550100"));
/// assert_eq!(phone("(415) 555-0100").as_deref(), Some("phone:national:4155550100"));
/// assert_eq!(phone("call me"), None);
/// ```
pub fn phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (international, rest) = match raw.strip_prefix('+').or_else(|| raw.strip_prefix("00")) {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '/' | '(' | ')' | '\u{a0}' => {}
            _ => return None,
        }
    }
    if !(7..=15).contains(&digits.len()) {
        return None;
    }
    if international {
        (!digits.starts_with('0')).then(|| format!("phone:+{digits}"))
    } else {
        Some(format!("{NATIONAL}{digits}"))
    }
}

/// A lookup as it is stored for a tenant whose numbers without a country code are in
/// `country_code` (`"+1"`, `"+44"`): a `phone:national:` lookup in E.164, any other as it is.
/// `None` for a national number the tenant gives no country for, or that does not fit it.
///
/// The national prefix is dropped: a leading `0` (`020 7946 0958` in `+44`), `8` in `+7` and
/// `06` in `+36`; `+39` (Italy) keeps its `0`. In `+1` a number has 10 digits, or 11 starting
/// with `1`.
///
/// ```
/// use plugin_sdk::lookup::resolve;
/// assert_eq!(resolve("phone:national:02079460958", Some("+44")).as_deref(), Some("phone:+442079460958"));
/// assert_eq!(resolve("phone:national:4155550100", None), None);
/// ```
pub fn resolve(lookup: &str, country_code: Option<&str>) -> Option<String> {
    let Some(digits) = lookup.strip_prefix(NATIONAL) else {
        return Some(lookup.to_string());
    };
    let code = country_code?.strip_prefix('+')?;
    let national = match code {
        "1" => match digits.len() {
            10 => digits,
            11 => digits.strip_prefix('1')?,
            _ => return None,
        },
        "39" => digits,
        "7" => digits.strip_prefix('8').unwrap_or(digits),
        "36" => digits.strip_prefix("06").unwrap_or(digits),
        _ => digits.strip_prefix('0').unwrap_or(digits),
    };
    let whole = code.len() + national.len();
    let ok = (7..=15).contains(&whole)
        && (code == "39" || !national.starts_with('0'))
        && national.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| format!("phone:+{code}{national}"))
}

/// Whether `code` is a country calling code as [`resolve`] takes it: `+` and 1 to 3 digits,
/// the first not `0`.
///
/// ```
/// assert!(plugin_sdk::lookup::is_country_code("+44"));
/// assert!(!plugin_sdk::lookup::is_country_code("44"));
/// ```
pub fn is_country_code(code: &str) -> bool {
    code.strip_prefix('+').is_some_and(|d| {
        (1..=3).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// The lookup of an email address: `email:` and the address as [`normalize_email`] writes it.
///
/// ```
/// assert_eq!(plugin_sdk::lookup::email(" Jane@Example.COM ").as_deref(), Some("email:jane@example.com"));
/// ```
pub fn email(raw: &str) -> Option<String> {
    normalize_email(raw).map(|e| format!("email:{e}"))
}

/// A plausible email address, trimmed and lower-cased: one `@` with something before it, a
/// domain with a dot that neither starts nor ends it, no spaces or control characters, at most
/// 254 bytes. `None` otherwise.
///
/// ```
/// assert_eq!(plugin_sdk::lookup::normalize_email("no-at-sign"), None);
/// ```
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
    fn a_number_without_its_country_waits_for_the_tenants() {
        assert_eq!(
            phone("(415) 555-0100").as_deref(),
            Some("phone:national:4155550100")
        );
        let us = |raw: &str| resolve(&phone(raw)?, Some("+1"));
        for raw in [
            "(415) 555-0100",
            "415.555.0100",
            "1 415 555 0100",
            "+1 415 555 0100",
        ] {
            assert_eq!(us(raw).as_deref(), Some("phone:+14155550100"), "{raw}");
        }
        // Too short or long for a North American number.
        assert_eq!(us("555-0100 12"), None);
        assert_eq!(us("2 415 555 0100"), None);
        let uk = |raw: &str| resolve(&phone(raw)?, Some("+44"));
        assert_eq!(uk("020 7946 0958").as_deref(), Some("phone:+442079460958"));
        assert_eq!(uk("+1 415 555 0100").as_deref(), Some("phone:+14155550100"));
        let it = resolve(&phone("06 1234 5678").unwrap(), Some("+39"));
        assert_eq!(it.as_deref(), Some("phone:+390612345678"));
        let ru = resolve(&phone("8 495 123-45-67").unwrap(), Some("+7"));
        assert_eq!(ru.as_deref(), Some("phone:+74951234567"));
        // No country for the tenant: not a lookup; other lookups pass as they are.
        assert_eq!(resolve("phone:national:4155550100", None), None);
        assert_eq!(resolve("phone:national:4155550100", Some("44")), None);
        assert_eq!(
            resolve("email:jane@example.com", None).as_deref(),
            Some("email:jane@example.com")
        );
    }

    #[test]
    fn country_codes_are_a_plus_and_up_to_three_digits() {
        for good in ["+1", "+44", "+353"] {
            assert!(is_country_code(good), "{good}");
        }
        for bad in ["", "+", "1", "+0", "+1234", "+4a", "44"] {
            assert!(!is_country_code(bad), "{bad}");
        }
    }

    #[test]
    fn phones_with_letters_or_the_wrong_length_are_not_lookups() {
        for raw in [
            "",
            "+",
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
