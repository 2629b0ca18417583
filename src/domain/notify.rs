//! What a person wants to hear about a room: every message, mentions of them, or nothing.
//! Set per room, with a default on the profile; the unread marks follow it now, and
//! notifications will.

use super::Invalid;

/// How much of a room's activity a person wants to be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notify {
    /// Every message.
    All,
    /// Messages that mention them.
    Mentions,
    /// Nothing.
    Nothing,
}

impl Notify {
    /// Every choice, in the order forms list them.
    pub const CHOICES: [Notify; 3] = [Notify::All, Notify::Mentions, Notify::Nothing];

    /// The value forms, the API and the database spell it with: `all`, `mentions`, `nothing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Notify::All => "all",
            Notify::Mentions => "mentions",
            Notify::Nothing => "nothing",
        }
    }

    /// How people read it.
    pub fn label(self) -> &'static str {
        match self {
            Notify::All => "All messages",
            Notify::Mentions => "Mentions only",
            Notify::Nothing => "Nothing",
        }
    }

    /// One of the three values, exactly as `as_str` spells them.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        Self::CHOICES
            .into_iter()
            .find(|n| n.as_str() == value)
            .ok_or(Invalid("Choose all messages, mentions only or nothing."))
    }

    /// A room's own setting as a form or the API sends it: one of the three, or `default`
    /// (`None`: follow the profile's default).
    pub fn parse_for_room(value: &str) -> Result<Option<Self>, Invalid> {
        match value {
            "default" => Ok(None),
            other => Self::parse(other).map(Some).map_err(|_| {
                Invalid("Choose the default, all messages, mentions only or nothing.")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_three_spellings_parse() {
        for n in Notify::CHOICES {
            assert_eq!(Notify::parse(n.as_str()), Ok(n));
            assert_eq!(Notify::parse_for_room(n.as_str()), Ok(Some(n)));
        }
        assert_eq!(Notify::parse_for_room("default"), Ok(None));
        for bad in ["", "ALL", "all ", "default", "none", "<script>", "\u{0}"] {
            assert!(Notify::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Notify::parse_for_room("Default").is_err());
    }
}
