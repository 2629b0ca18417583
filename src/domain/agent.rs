//! "Firefox on Linux" from a User-Agent: what the sessions page shows for each signed-in
//! browser. A small hand-written reading of the tokens browsers actually send, not a full
//! parser: a User-Agent is a claim, shown to its own owner only, to tell their browsers apart.

/// The browser and operating system a User-Agent names, in words ("Chrome", "Android").
/// Either is `None` when the User-Agent does not say (or is not a browser's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agent {
    /// The browser: Edge, Opera, Samsung Internet, Firefox, Chrome, Chromium, Safari, or
    /// `None`.
    pub browser: Option<&'static str>,
    /// The operating system: Windows, Android, iOS, iPadOS, macOS, ChromeOS, Linux, or `None`.
    pub os: Option<&'static str>,
}

impl Agent {
    /// Reads a User-Agent. Order matters: Edge, Opera and Samsung Internet also say "Chrome",
    /// Chrome also says "Safari", and Android also says "Linux"; iPhones say "like Mac OS X".
    pub fn parse(ua: &str) -> Self {
        let has = |token: &str| ua.contains(token);
        let browser = if has("Edg/") || has("EdgA/") || has("EdgiOS/") {
            Some("Edge")
        } else if has("OPR/") || has("Opera") {
            Some("Opera")
        } else if has("SamsungBrowser/") {
            Some("Samsung Internet")
        } else if has("Firefox/") || has("FxiOS/") {
            Some("Firefox")
        } else if has("Chromium/") {
            Some("Chromium")
        } else if has("Chrome/") || has("CriOS/") {
            Some("Chrome")
        } else if has("Safari/") && has("Version/") {
            Some("Safari")
        } else {
            None
        };
        let os = if has("Windows") {
            Some("Windows")
        } else if has("Android") {
            Some("Android")
        } else if has("iPhone") || has("iPod") {
            Some("iOS")
        } else if has("iPad") {
            Some("iPadOS")
        } else if has("CrOS") {
            Some("ChromeOS")
        } else if has("Macintosh") || has("Mac OS X") {
            Some("macOS")
        } else if has("Linux") || has("X11") {
            Some("Linux")
        } else {
            None
        };
        Agent { browser, os }
    }

    /// "Firefox on Linux", "Chrome", "a browser on Windows", or "Unknown browser".
    pub fn describe(&self) -> String {
        match (self.browser, self.os) {
            (Some(b), Some(o)) => format!("{b} on {o}"),
            (Some(b), None) => b.to_string(),
            (None, Some(o)) => format!("A browser on {o}"),
            (None, None) => "Unknown browser".to_string(),
        }
    }
}

/// A User-Agent cut to at most `max` characters (on a character boundary) with control
/// characters dropped: what a session stores.
pub fn stored_user_agent(ua: &str, max: usize) -> String {
    ua.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn says(ua: &str) -> String {
        Agent::parse(ua).describe()
    }

    #[test]
    fn common_browsers_are_told_apart() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 Mobile/15E148 Safari/604.1",
                "Chrome on iPadOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
                "Samsung Internet on Android",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
                "Opera on Windows",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on ChromeOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
        ];
        for (ua, expected) in cases {
            assert_eq!(says(ua), expected, "{ua}");
        }
    }

    #[test]
    fn what_is_not_a_browser_says_so() {
        assert_eq!(says(""), "Unknown browser");
        assert_eq!(says("curl/8.5.0"), "Unknown browser");
        assert_eq!(says("reqwest (Windows)"), "A browser on Windows");
    }

    #[test]
    fn a_stored_agent_is_cut_on_a_character_and_has_no_controls() {
        assert_eq!(stored_user_agent("ab\u{0}c\nd", 300), "abcd");
        assert_eq!(
            stored_user_agent(&"é".repeat(400), 300).chars().count(),
            300
        );
    }
}
