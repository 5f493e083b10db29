//! Where a visit came from: the campaign tags and ad click ids of its landing URL, and the
//! channel it falls in.
//!
//! The channels and their rules follow Google Analytics 4's default channel group
//! (<https://support.google.com/analytics/answer/9756891>) and PostHog's channel type
//! (<https://posthog.com/docs/data/channel-type>), restricted to the channels maidian reports;
//! what GA4 would call Paid Shopping, Paid Other, Audio, SMS or Mobile Push is `Unassigned`.
//! Known search engines, social networks and video sites are listed in `data/sources.txt`.

use std::sync::OnceLock;

/// The campaign tags read from a landing URL.
pub const UTM_PARAMS: [&str; 5] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
];

/// Ad click ids, in the order they are looked for; the first present is the visit's.
pub const CLICK_IDS: [&str; 7] = [
    "gclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "fbclid",
    "ttclid",
    "li_fat_id",
];

/// What the landing URL says about the visit's origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Landing {
    /// `utm_source`, `utm_medium`, `utm_campaign`, `utm_term`, `utm_content`, lower-cased
    /// except campaign, term and content.
    pub utm: [Option<String>; 5],
    /// The name of the ad click id parameter present (`gclid`, …); its value is not kept.
    pub click_id: Option<&'static str>,
}

impl Landing {
    pub fn source(&self) -> Option<&str> {
        self.utm[0].as_deref()
    }
    pub fn medium(&self) -> Option<&str> {
        self.utm[1].as_deref()
    }
    pub fn campaign(&self) -> Option<&str> {
        self.utm[2].as_deref()
    }
}

/// Decodes `%XX` and `+` in a query value; invalid sequences are kept as they are.
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the campaign tags and click id from `url`'s query (the fragment is not looked at).
pub fn landing(url: &str) -> Landing {
    let mut out = Landing::default();
    let before_hash = url.split('#').next().unwrap_or("");
    let Some((_, query)) = before_hash.split_once('?') else {
        return out;
    };
    // The first of CLICK_IDS present (an index into it; past the end: none).
    let mut seen = CLICK_IDS.len();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = k.to_ascii_lowercase();
        if let Some(i) = UTM_PARAMS.iter().position(|p| *p == k) {
            let v = decode(v).trim().to_string();
            if !v.is_empty() && out.utm[i].is_none() {
                // Source and medium are matched against lists: compared in lower case.
                out.utm[i] = Some(if i < 2 { v.to_lowercase() } else { v });
            }
        } else if !v.is_empty() {
            if let Some(id) = CLICK_IDS.iter().position(|c| *c == k) {
                seen = seen.min(id);
            }
        }
    }
    out.click_id = CLICK_IDS.get(seen).copied();
    out
}

/// The host of an absolute `http(s)` URL, lower-cased, without `www.` and port.
pub fn host(url: &str) -> Option<String> {
    url.split_once("://")?;
    let host = crate::rollup::host_of(url)?.split(':').next()?;
    let host = host.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
    (!host.is_empty()).then_some(host)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Search,
    Social,
    Video,
}

struct Known {
    kind: Kind,
    /// `google.` for `google.*`, else a host such as `t.co`.
    pattern: String,
    name: String,
}

fn known() -> &'static [Known] {
    static KNOWN: OnceLock<Vec<Known>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        include_str!("../data/sources.txt")
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let mut parts = l.splitn(3, ' ');
                let kind = match parts.next()? {
                    "search" => Kind::Search,
                    "social" => Kind::Social,
                    "video" => Kind::Video,
                    _ => return None,
                };
                let pattern = parts.next()?.trim_end_matches('*').to_string();
                let name = parts.next()?.trim().to_string();
                Some(Known {
                    kind,
                    pattern,
                    name,
                })
            })
            .collect()
    })
}

/// `host` is `domain` or one of its subdomains.
pub fn within(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

/// The known site `host` belongs to (`news.google.co.jp` → search, `google`).
pub fn classify_host(host: &str) -> Option<(Kind, &'static str)> {
    known().iter().find_map(|k| {
        let hit = match k.pattern.strip_suffix('.') {
            // `name.*`: a label `name` followed by at least one more.
            Some(label) => host
                .rsplit_once('.')
                .is_some_and(|(head, _)| head.split('.').any(|l| l == label)),
            None => within(host, &k.pattern),
        };
        hit.then_some((k.kind, k.name.as_str()))
    })
}

/// The known kind of a `utm_source` value: a known site's name (`google`) or host.
fn classify_source(source: &str) -> Option<Kind> {
    known()
        .iter()
        .find(|k| k.name == source)
        .map(|k| k.kind)
        .or_else(|| classify_host(source.strip_prefix("www.").unwrap_or(source)).map(|(k, _)| k))
}

/// A visit's source when its URL has no `utm_source`: the known site's name of the referrer,
/// else the referrer's host; `None` for a visit with no outside referrer (direct).
pub fn referrer_source(referrer_host: Option<&str>) -> Option<String> {
    let host = referrer_host?;
    Some(
        classify_host(host)
            .map(|(_, name)| name.to_string())
            .unwrap_or_else(|| host.to_string()),
    )
}

fn paid_medium(m: &str) -> bool {
    m.contains("cp") || m == "ppc" || m == "retargeting" || m.starts_with("paid")
}

/// The channel of a session's landing page view: `landing` from its URL, `referrer_host` the
/// host of its referrer when that is another site than the page's own.
pub fn channel(landing: &Landing, referrer_host: Option<&str>) -> &'static str {
    let medium = landing.medium().unwrap_or("");
    let source_kind = match landing.source() {
        Some(s) => classify_source(s),
        None => referrer_host.and_then(classify_host).map(|(k, _)| k),
    };
    let campaign = landing.campaign().unwrap_or("").to_lowercase();
    let paid = paid_medium(medium);
    if landing.source().is_none()
        && landing.medium().is_none()
        && landing.click_id.is_none()
        && referrer_host.is_none()
    {
        return "Direct";
    }
    if campaign.contains("cross-network") {
        return "Cross-network";
    }
    match (landing.click_id, source_kind) {
        (Some("gclid" | "gbraid" | "wbraid" | "msclkid"), _) => return "Paid Search",
        (Some("ttclid" | "li_fat_id"), _) => return "Paid Social",
        (Some("fbclid"), _) if paid => return "Paid Social",
        _ => {}
    }
    match source_kind {
        Some(Kind::Search) if paid => return "Paid Search",
        Some(Kind::Social) if paid => return "Paid Social",
        Some(Kind::Video) if paid => return "Paid Video",
        _ => {}
    }
    if matches!(
        medium,
        "display" | "banner" | "expandable" | "interstitial" | "cpm"
    ) {
        return "Display";
    }
    if paid {
        return "Unassigned";
    }
    if source_kind == Some(Kind::Search) || medium == "organic" {
        return "Organic Search";
    }
    if source_kind == Some(Kind::Social)
        || landing.click_id == Some("fbclid")
        || matches!(
            medium,
            "social" | "social-network" | "social-media" | "sm" | "social network" | "social media"
        )
    {
        return "Organic Social";
    }
    if source_kind == Some(Kind::Video) || medium.contains("video") {
        return "Organic Video";
    }
    let email = |s: &str| matches!(s, "email" | "e-mail" | "e_mail" | "e mail");
    if email(medium) || landing.source().is_some_and(email) {
        return "Email";
    }
    if medium == "affiliate" {
        return "Affiliate";
    }
    if medium == "referral" || (medium.is_empty() && landing.source().is_none()) {
        return "Referral";
    }
    "Unassigned"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tags_and_click_ids() {
        let l = landing("https://s.example/p?UTM_Source=News%20Letter&utm_medium=Email&utm_campaign=Nov+Sale&gclid=abc&fbclid=x#utm_source=no");
        assert_eq!(l.source(), Some("news letter"));
        assert_eq!(l.medium(), Some("email"));
        assert_eq!(l.campaign(), Some("Nov Sale"));
        assert_eq!(l.click_id, Some("gclid"));
        assert_eq!(landing("https://s.example/"), Landing::default());
        assert_eq!(
            landing("https://s.example/?utm_source=&utm_medium=%zz").medium(),
            Some("%zz")
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(
            host("https://www.Google.co.jp:443/search?q=1").as_deref(),
            Some("google.co.jp")
        );
        assert_eq!(host("android-app://com.x"), Some("com.x".into()));
        assert_eq!(host("/relative"), None);
        assert_eq!(
            classify_host("news.google.co.jp"),
            Some((Kind::Search, "google"))
        );
        assert_eq!(classify_host("t.co"), Some((Kind::Social, "twitter")));
        assert_eq!(classify_host("notgoogle.com"), None);
        assert_eq!(classify_host("google"), None);
        assert_eq!(
            classify_host("m.youtube.com"),
            Some((Kind::Video, "youtube"))
        );
    }

    /// Each channel from a landing URL and a referrer.
    #[test]
    fn channels() {
        let cases = [
            ("https://s.example/", None, "Direct"),
            (
                "https://s.example/?utm_campaign=q4-cross-network&utm_source=google&utm_medium=cpc",
                None,
                "Cross-network",
            ),
            (
                "https://s.example/?gclid=1",
                Some("https://www.google.com/"),
                "Paid Search",
            ),
            (
                "https://s.example/?utm_source=bing&utm_medium=ppc",
                None,
                "Paid Search",
            ),
            (
                "https://s.example/?utm_source=baidu&utm_medium=cpc",
                None,
                "Paid Search",
            ),
            (
                "https://s.example/?utm_source=facebook&utm_medium=paid_social",
                None,
                "Paid Social",
            ),
            (
                "https://s.example/?ttclid=1",
                Some("https://www.tiktok.com/"),
                "Paid Social",
            ),
            (
                "https://s.example/?utm_source=youtube&utm_medium=cpv",
                None,
                "Paid Video",
            ),
            (
                "https://s.example/?utm_source=dsp&utm_medium=display",
                None,
                "Display",
            ),
            (
                "https://s.example/?utm_source=adnet&utm_medium=cpm",
                None,
                "Display",
            ),
            (
                "https://s.example/",
                Some("https://www.google.com/"),
                "Organic Search",
            ),
            (
                "https://s.example/",
                Some("https://www.baidu.com/link?url=x"),
                "Organic Search",
            ),
            (
                "https://s.example/?utm_source=newsletter&utm_medium=organic",
                None,
                "Organic Search",
            ),
            (
                "https://s.example/",
                Some("https://t.co/abc"),
                "Organic Social",
            ),
            (
                "https://s.example/?fbclid=1",
                Some("https://l.facebook.com/"),
                "Organic Social",
            ),
            (
                "https://s.example/?utm_source=weibo",
                None,
                "Organic Social",
            ),
            (
                "https://s.example/",
                Some("https://www.youtube.com/watch?v=1"),
                "Organic Video",
            ),
            (
                "https://s.example/?utm_source=newsletter&utm_medium=email&utm_campaign=nov",
                None,
                "Email",
            ),
            ("https://s.example/?utm_source=e-mail", None, "Email"),
            (
                "https://s.example/?utm_source=partner&utm_medium=affiliate",
                None,
                "Affiliate",
            ),
            (
                "https://s.example/",
                Some("https://blog.example/post"),
                "Referral",
            ),
            (
                "https://s.example/?utm_source=blog&utm_medium=referral",
                None,
                "Referral",
            ),
            (
                "https://s.example/?utm_source=thing&utm_medium=cpc",
                None,
                "Unassigned",
            ),
            (
                "https://s.example/?utm_source=thing&utm_medium=sms",
                None,
                "Unassigned",
            ),
        ];
        for (url, referrer, want) in cases {
            let r = referrer.and_then(host);
            assert_eq!(
                channel(&landing(url), r.as_deref()),
                want,
                "{url} from {referrer:?}"
            );
        }
    }
}
