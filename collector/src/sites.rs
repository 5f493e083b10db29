//! The sites this collector tracks, built once from the configuration: the seed's single-site
//! keys as the site `default`, then `[[sites]]`. Keys map to sites here and nowhere else: a
//! write key picks the site an event is stored under, a read key the one site it reads, the
//! admin key any site (`?site=ID`).

use std::sync::Arc;
use std::time::Duration;

use maidian_analytics::site::{SiteInfo, Zone, DEFAULT_SITE};
use maidian_analytics::store::{within, Store, StoreError};

use crate::config::Config;
use crate::error::ApiError;

/// One site with its keys and its time zone.
pub struct Site {
    pub id: String,
    pub name: String,
    /// Empty for the default site of a collector whose `api_key` is empty (ingest needs no
    /// key).
    pub write_key: String,
    pub read_key: String,
    /// Origins allowed to send its events; empty: any.
    pub origins: Vec<String>,
    pub timezone: String,
    pub zone: Zone,
}

impl Site {
    pub fn info(&self) -> SiteInfo {
        SiteInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            timezone: self.timezone.clone(),
            earlier: Vec::new(),
        }
    }

    /// Whether a request from `origin` (its `Origin` header) may send this site's events: a
    /// request without one (a server, curl) may; a browser's must be listed when the site
    /// lists origins.
    pub fn admits_origin(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(o) => self.origins.is_empty() || self.origins.iter().any(|a| a == o),
        }
    }
}

/// Who a read key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reader {
    /// The admin key: every site.
    Admin,
    /// A site's read key: that site (an index into [`Sites::all`]).
    Site(usize),
}

pub struct Sites {
    sites: Vec<Site>,
    admin_key: String,
    /// The site of events sent with no key or a key of no site: the default site of a
    /// collector whose `api_key` is empty.
    keyless: Option<usize>,
}

/// Compares in time independent of where the strings differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sites {
    /// From a validated configuration.
    pub fn from_config(config: &Config) -> Sites {
        let api = &config.tracking_api;
        let mut sites = Vec::with_capacity(config.sites.len() + 1);
        if !api.read_key.trim().is_empty() {
            sites.push(Site {
                id: DEFAULT_SITE.into(),
                name: "Default".into(),
                write_key: api.api_key.clone(),
                read_key: api.read_key.clone(),
                origins: Vec::new(),
                timezone: api.timezone.clone(),
                zone: Zone::named(&api.timezone).unwrap_or_default(),
            });
        }
        for s in &config.sites {
            sites.push(Site {
                id: s.id.clone(),
                name: if s.name.is_empty() {
                    s.id.clone()
                } else {
                    s.name.clone()
                },
                write_key: s.write_key.clone(),
                read_key: s.read_key.clone(),
                origins: s.origins.clone(),
                timezone: s.timezone.clone(),
                zone: Zone::named(&s.timezone).unwrap_or_default(),
            });
        }
        let keyless = sites
            .iter()
            .position(|s| s.id == DEFAULT_SITE && s.write_key.is_empty());
        Sites {
            sites,
            admin_key: api.admin_key.clone(),
            keyless,
        }
    }

    pub fn all(&self) -> &[Site] {
        &self.sites
    }

    pub fn get(&self, i: usize) -> Option<&Site> {
        self.sites.get(i)
    }

    /// Whether ingest works without a key (to the default site).
    pub fn keyless(&self) -> bool {
        self.keyless.is_some()
    }

    /// The site a write key sends to (`None` or an empty key: no key was sent). No key goes
    /// to the keyless default site when there is one; a key that is no site's write key is
    /// 401 always (a keyless collector still has a read key, so a pasted read key or a removed
    /// site's key is a mistake to show, not events to file under `default`).
    pub fn writer(&self, key: Option<&str>) -> Result<usize, ApiError> {
        let key = key.filter(|k| !k.is_empty());
        let named = key.and_then(|k| {
            self.sites
                .iter()
                .position(|s| !s.write_key.is_empty() && same(k, &s.write_key))
        });
        match (named, self.keyless, key) {
            (Some(i), _, _) => Ok(i),
            (None, Some(i), None) => Ok(i),
            (None, None, None) => Err(ApiError::Unauthorized(
                "missing write key: send X-API-Key, ?api_key= or an api_key body field",
            )),
            (None, _, Some(_)) => Err(ApiError::Unauthorized("wrong write key")),
        }
    }

    /// Who `key` reads for; a write key asking to read is 403.
    pub fn reader(&self, key: &str) -> Result<Reader, ApiError> {
        if !self.admin_key.is_empty() && same(key, &self.admin_key) {
            return Ok(Reader::Admin);
        }
        if let Some(i) = self.sites.iter().position(|s| same(key, &s.read_key)) {
            return Ok(Reader::Site(i));
        }
        if self
            .sites
            .iter()
            .any(|s| !s.write_key.is_empty() && same(key, &s.write_key))
        {
            return Err(ApiError::Forbidden(
                "the write key cannot read; use the read key",
            ));
        }
        Err(ApiError::Unauthorized("wrong read key"))
    }

    /// The site `reader` reads when it asks for `asked` (`?site=`): its own for a site key
    /// (another is 403); for the admin key the one asked, required when there are several.
    pub fn readable(&self, reader: Reader, asked: Option<&str>) -> Result<&Site, ApiError> {
        let asked = asked.filter(|a| !a.is_empty());
        match reader {
            Reader::Site(i) => {
                let own = self.sites.get(i).ok_or(ApiError::Unavailable)?;
                match asked {
                    Some(a) if a != own.id => {
                        Err(ApiError::Forbidden("this read key reads its own site only"))
                    }
                    _ => Ok(own),
                }
            }
            Reader::Admin => match asked {
                Some(a) => {
                    self.sites
                        .iter()
                        .find(|s| s.id == a)
                        .ok_or_else(|| ApiError::BadParam {
                            name: "site",
                            message: format!("no site {a:?}"),
                        })
                }
                None => match self.sites.as_slice() {
                    [only] => Ok(only),
                    _ => Err(ApiError::BadParam {
                        name: "site",
                        message:
                            "required with the admin key: name a site (GET /api/sites lists them)"
                                .into(),
                    }),
                },
            },
        }
    }

    /// The sites `reader` may read.
    pub fn visible(&self, reader: Reader) -> Vec<&Site> {
        match reader {
            Reader::Admin => self.sites.iter().collect(),
            Reader::Site(i) => self.sites.get(i).into_iter().collect(),
        }
    }

    /// Every origin some site lists (for CORS); empty when some site takes any origin.
    pub fn listed_origins(&self) -> Vec<String> {
        if self.sites.iter().any(|s| s.origins.is_empty()) {
            return Vec::new();
        }
        let mut all: Vec<String> = self.sites.iter().flat_map(|s| s.origins.clone()).collect();
        all.sort();
        all.dedup();
        all
    }
}

/// Writes `sites` into the store's registry, where the rollup consumer and the CLI find their
/// time zones. Waits a few seconds for the store; one that does not answer yet (MongoDB may
/// come up after the collector) is tried again in the background until it does.
pub async fn register(sites: &Sites, store: &Arc<Store>) {
    let infos: Vec<SiteInfo> = sites.all().iter().map(Site::info).collect();
    let Err(e) = within(Duration::from_secs(3), register_once(store, &infos)).await else {
        return;
    };
    tracing::warn!(error = %e, "the store does not answer yet; serving anyway and retrying");
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if register_once(&store, &infos).await.is_ok() {
                tracing::info!("the store answers: sites registered");
                break;
            }
        }
    });
}

/// One registration, warning when a site's time zone changed: its past days follow the new
/// zone only after `maidian rollups rebuild`.
async fn register_once(store: &Store, infos: &[SiteInfo]) -> Result<(), StoreError> {
    let before = store.register_sites(infos).await?;
    for s in infos {
        if let Some(old) = before
            .iter()
            .find(|o| o.id == s.id && o.timezone != s.timezone)
        {
            tracing::warn!(
                site = %s.id, from = %old.timezone, to = %s.timezone,
                "time zone changed: events received from now on count in the new zone; run `maidian rollups rebuild` so past days do too"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        let c: Config = toml::from_str(toml).expect("config parses");
        c.validate().expect("config is valid");
        c
    }

    const TWO: &str = "[tracking_api]\napi_key = \"wk\"\nread_key = \"rk\"\nadmin_key = \"ak\"\n\
        [[sites]]\nid = \"shop\"\nname = \"Shop\"\nwrite_key = \"wk-shop\"\nread_key = \"rk-shop\"\n\
        origins = [\"https://shop.example\"]\ntimezone = \"Asia/Shanghai\"\n";

    #[test]
    fn keys_pick_sites() {
        let s = Sites::from_config(&config(TWO));
        let ids: Vec<&str> = s.all().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["default", "shop"]);
        assert_eq!(s.writer(Some("wk-shop")).unwrap(), 1);
        assert_eq!(s.writer(Some("wk")).unwrap(), 0);
        assert!(matches!(
            s.writer(Some("rk")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(s.writer(None), Err(ApiError::Unauthorized(_))));

        let shop = s.reader("rk-shop").unwrap();
        assert_eq!(s.readable(shop, None).unwrap().id, "shop");
        assert_eq!(s.readable(shop, Some("shop")).unwrap().id, "shop");
        assert!(matches!(
            s.readable(shop, Some("default")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(s.reader("wk-shop"), Err(ApiError::Forbidden(_))));
        assert!(matches!(s.reader("nope"), Err(ApiError::Unauthorized(_))));

        let admin = s.reader("ak").unwrap();
        assert_eq!(s.readable(admin, Some("shop")).unwrap().id, "shop");
        assert!(matches!(
            s.readable(admin, None),
            Err(ApiError::BadParam { .. })
        ));
        assert!(matches!(
            s.readable(admin, Some("blog")),
            Err(ApiError::BadParam { .. })
        ));
        assert_eq!(s.visible(admin).len(), 2);
        assert_eq!(s.visible(shop).len(), 1);

        let shop = s.get(1).unwrap();
        assert!(shop.admits_origin(None));
        assert!(shop.admits_origin(Some("https://shop.example")));
        assert!(!shop.admits_origin(Some("https://evil.example")));
        assert_eq!(s.listed_origins(), Vec::<String>::new());
    }

    #[test]
    fn seed_keys_alone_are_the_default_site() {
        let keyless = Sites::from_config(&config("[tracking_api]\nread_key = \"rk\"\n"));
        assert!(keyless.keyless());
        assert_eq!(keyless.writer(None).unwrap(), 0);
        // A key of no site is refused even here: it is a mistake (a read key pasted into a
        // page, a removed site's key), not events to file under `default`.
        assert!(matches!(
            keyless.writer(Some("anything")),
            Err(ApiError::Unauthorized(_))
        ));
        assert_eq!(keyless.writer(Some("")).unwrap(), 0);
        let r = keyless.reader("rk").unwrap();
        assert_eq!(keyless.readable(r, None).unwrap().id, "default");
    }

    #[test]
    fn clashing_or_bad_sites_fail_with_one_line_naming_them() {
        let cases = [
            (
                TWO.replace("rk-shop", "wk"),
                "sites[0].read_key: same key as tracking_api.api_key",
            ),
            (
                TWO.replace("\"ak\"", "\"wk-shop\""),
                "sites[0].write_key: same key as tracking_api.admin_key",
            ),
            (
                TWO.replace("id = \"shop\"", "id = \"Shop!\""),
                "sites[0].id",
            ),
            (
                TWO.replace("id = \"shop\"", "id = \"default\""),
                "sites[0].id",
            ),
            (
                TWO.replace("Asia/Shanghai", "Asia/Atlantis"),
                "sites[0].timezone",
            ),
            (
                TWO.replace("https://shop.example", "shop.example"),
                "sites[0].origins",
            ),
            (
                format!("{TWO}[[sites]]\nid = \"shop\"\nwrite_key = \"a\"\nread_key = \"b\"\n"),
                "sites[1].id: same id as sites[0]",
            ),
        ];
        for (toml, want) in cases {
            let c: Config = toml::from_str(&toml).expect("parses");
            let e = c.validate().expect_err(want).to_string();
            assert!(e.contains(want), "{e} / {want}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
