//! Addresses: E.164 numbers for SMS, `whatsapp:+E164` for WhatsApp. Pure.

/// The WhatsApp address prefix.
pub const WHATSAPP: &str = "whatsapp:";

/// A messaging channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Channel {
    /// SMS/MMS.
    #[default]
    Sms,
    /// WhatsApp.
    Whatsapp,
}

impl Channel {
    /// `sms` or `whatsapp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
        }
    }
}

fn split_prefix(addr: &str) -> (bool, &str) {
    let a = addr.trim();
    match a.get(..WHATSAPP.len()) {
        Some(p) if p.eq_ignore_ascii_case(WHATSAPP) => (true, &a[WHATSAPP.len()..]),
        _ => (false, a),
    }
}

/// The channel of an address.
pub fn channel(addr: &str) -> Channel {
    if split_prefix(addr).0 {
        Channel::Whatsapp
    } else {
        Channel::Sms
    }
}

/// The number without a `whatsapp:` prefix, with spaces, dashes, dots and parentheses removed.
pub fn number(addr: &str) -> String {
    split_prefix(addr)
        .1
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
        .collect()
}

/// An address in the form Twilio sends and expects: `+E164` or `whatsapp:+E164`, trimmed,
/// the prefix in lower case, the number without formatting characters.
pub fn normalize(addr: &str) -> String {
    match channel(addr) {
        Channel::Sms => number(addr),
        Channel::Whatsapp => format!("{WHATSAPP}{}", number(addr)),
    }
}

/// The phone lookup (`phone:+E164`, the SDK's) an address is found by, for SMS and WhatsApp
/// alike: the people behind `+14155550111` and `whatsapp:+14155550111` are the same contact.
pub fn lookup(addr: &str) -> Option<String> {
    plugin_sdk::lookup::phone(&number(addr))
}

/// Whether a number (no prefix) is E.164: `+`, then 6 to 15 digits, the first not 0.
pub fn is_e164(n: &str) -> bool {
    let Some(digits) = n.strip_prefix('+') else {
        return false;
    };
    (6..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Whether `s` is a Twilio SID with this two-letter prefix: 34 characters, then hex.
pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_and_whatsapp_addresses_of_one_number_share_its_lookup() {
        for addr in [
            "+14155550111",
            "whatsapp:+14155550111",
            "WhatsApp:+1 415 555 0111",
        ] {
            assert_eq!(
                lookup(addr).as_deref(),
                Some("phone:+14155550111"),
                "{addr}"
            );
        }
        assert_eq!(lookup("MG0123"), None);
    }

    #[test]
    fn channels_and_normal_forms() {
        assert_eq!(channel("whatsapp:+14155550100"), Channel::Whatsapp);
        assert_eq!(channel(" WhatsApp:+1 415"), Channel::Whatsapp);
        assert_eq!(channel("+14155550100"), Channel::Sms);
        assert_eq!(normalize(" +1 (415) 555-0100 "), "+14155550100");
        assert_eq!(
            normalize("WhatsApp:+1 415.555.0100"),
            "whatsapp:+14155550100"
        );
        assert_eq!(number("whatsapp:+14155550100"), "+14155550100");
        assert_eq!(Channel::Whatsapp.as_str(), "whatsapp");
    }

    #[test]
    fn e164_and_sids() {
        assert!(is_e164("+14155550100"));
        assert!(is_e164("+447911123456"));
        assert!(!is_e164("14155550100"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1415555010012345"));
        assert!(!is_e164("+1415abc"));
        assert!(is_sid("AC0123456789abcdef0123456789abcdef", "AC"));
        assert!(!is_sid("AC0123456789abcdef0123456789abcdeg", "AC"));
        assert!(!is_sid("MG0123456789abcdef0123456789abcdef", "AC"));
        assert!(!is_sid("AC01", "AC"));
        assert!(!is_sid("ACéé23456789abcdef0123456789abcd", "AC"));
    }
}
