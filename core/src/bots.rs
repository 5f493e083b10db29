//! Whether an event comes from a bot, and why: a crawler, preview, monitor, headless browser
//! or HTTP library by its user agent, a browser driven by automation (`navigator.webdriver`,
//! reported by the SDK), or referrer spam. The lists live in one data file,
//! `data/bots.txt`. Flagged events are stored like any other, with the reason.

use std::sync::OnceLock;

/// Why an event was flagged.
pub const USER_AGENT: &str = "user_agent";
pub const WEBDRIVER: &str = "webdriver";
pub const REFERRER_SPAM: &str = "referrer_spam";

#[derive(Default)]
struct Lists {
    agents: Vec<String>,
    not_agents: Vec<String>,
    spam: Vec<String>,
}

fn lists() -> &'static Lists {
    static LISTS: OnceLock<Lists> = OnceLock::new();
    LISTS.get_or_init(|| {
        let mut l = Lists::default();
        for line in include_str!("../data/bots.txt").lines() {
            let Some((kind, text)) = line.split_once(' ') else {
                continue;
            };
            let text = text.trim().to_ascii_lowercase();
            match kind {
                "agent" => l.agents.push(text),
                "not-agent" => l.not_agents.push(text),
                "spam" => l.spam.push(text),
                _ => {}
            }
        }
        l
    })
}

/// A user agent that names a bot (an empty one says nothing: server-side clients send none).
pub fn is_bot_agent(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    let l = lists();
    l.agents.iter().any(|a| ua.contains(a.as_str()))
        && !l.not_agents.iter().any(|a| ua.contains(a.as_str()))
}

/// A referrer host on the referrer-spam list (the host itself or a subdomain).
pub fn is_spam_host(host: &str) -> bool {
    lists().spam.iter().any(|s| crate::source::within(host, s))
}

/// The reason an event is a bot's, if it is: `user_agent`, `webdriver` or `referrer_spam`.
pub fn classify(
    user_agent: Option<&str>,
    webdriver: bool,
    referrer_host: Option<&str>,
) -> Option<&'static str> {
    if user_agent.is_some_and(is_bot_agent) {
        Some(USER_AGENT)
    } else if webdriver {
        Some(WEBDRIVER)
    } else if referrer_host.is_some_and(is_spam_host) {
        Some(REFERRER_SPAM)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents() {
        let bots = [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "python-requests/2.31.0",
            "curl/8.5.0",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        ];
        for ua in bots {
            assert!(is_bot_agent(ua), "{ua}");
        }
        let people = [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 YaBrowser/23.11 Safari/537.36",
            "Mozilla/5.0 (Linux; Android 13; 2201123C Build/TKQ1.220807.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/116.0 Mobile Safari/537.36 MicroMessenger/8.0.43",
            "",
        ];
        for ua in people {
            assert!(!is_bot_agent(ua), "{ua}");
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(classify(Some("curl/8"), true, None), Some(USER_AGENT));
        assert_eq!(
            classify(Some("Mozilla/5.0 Chrome/120"), true, None),
            Some(WEBDRIVER)
        );
        assert_eq!(
            classify(None, false, Some("www.semalt.com")),
            Some(REFERRER_SPAM)
        );
        assert_eq!(classify(None, false, Some("notsemalt.com")), None);
        assert_eq!(classify(None, false, None), None);
    }
}
