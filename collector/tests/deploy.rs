//! The deployment files (no Docker engine or systemd here to run them): `deploy/compose.yaml`
//! parses, names the images and ports the collector uses, and sets only environment variables
//! the collector reads; `deploy/maidian.service` runs the collector binary with its config and
//! the usual hardening.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

use std::path::Path;

use maidian_collector::config::ENV_KEYS;
use yaml_rust2::{Yaml, YamlLoader};

/// Variables the collector reads besides `config::ENV_KEYS` (main.rs and tracing), and glibc's
/// `MALLOC_ARENA_MAX` (README, "Memory").
const OTHER_ENV: &[&str] = &[
    "MAIDIAN_CONFIG",
    "MAIDIAN_STORE",
    "MAIDIAN_LOG_FORMAT",
    "RUST_LOG",
    "MALLOC_ARENA_MAX",
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn known(name: &str) -> bool {
    ENV_KEYS.contains(&name) || OTHER_ENV.contains(&name)
}

#[test]
fn compose_file_brings_mongodb_as_a_replica_set_and_the_collector_wired_by_environment() {
    let text = std::fs::read_to_string(root().join("deploy/compose.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let services = &docs[0]["services"];

    let mongo = &services["mongo"];
    assert!(mongo["image"].as_str().unwrap().starts_with("mongo:"));
    let command: Vec<&str> = mongo["command"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        command.windows(2).any(|w| w == ["--replSet", "rs0"]),
        "{command:?}"
    );
    let volume = mongo["volumes"][0].as_str().unwrap();
    assert!(volume.ends_with(":/data/db"), "{volume}");
    let named = volume.split(':').next().unwrap();
    assert!(
        !docs[0]["volumes"][named].is_badvalue(),
        "volume {named} is declared"
    );
    assert!(!mongo["healthcheck"]["test"].is_badvalue());

    let collector = &services["collector"];
    let build = &collector["build"];
    let dockerfile = root()
        .join("deploy")
        .join(build["context"].as_str().unwrap())
        .join(build["dockerfile"].as_str().unwrap());
    assert!(dockerfile.exists(), "{}", dockerfile.display());
    assert_eq!(
        collector["depends_on"]["mongo"]["condition"].as_str(),
        Some("service_healthy")
    );
    let env = collector["environment"].as_hash().unwrap();
    for (k, v) in env {
        let k = k.as_str().unwrap();
        assert!(known(k), "{k} is not read by the collector");
        assert!(v.as_str().is_some(), "{k} is a string");
    }
    let get = |k: &str| env[&Yaml::String(k.into())].as_str().unwrap().to_string();
    assert!(get("MAIDIAN_MONGODB_URI").starts_with("mongodb://mongo:27017/"));
    assert!(get("MAIDIAN_MONGODB_URI").contains("replicaSet=rs0"));
    assert!(get("MAIDIAN_READ_KEY").contains("MAIDIAN_READ_KEY"));
    // The published ports are the ones the collector listens on.
    let ports: Vec<&str> = collector["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    for var in ["MAIDIAN_LISTEN", "MAIDIAN_METRICS_LISTEN"] {
        let port = get(var).rsplit(':').next().unwrap().to_string();
        assert!(
            ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "{var} port {port} not published: {ports:?}"
        );
    }
    // Metrics only on the host's loopback.
    assert!(ports.contains(&"127.0.0.1:9464:9464"), "{ports:?}");
    assert_eq!(collector["stop_signal"].as_str(), Some("SIGTERM"));
}

#[test]
fn systemd_unit_runs_the_collector_hardened() {
    let text = std::fs::read_to_string(root().join("deploy/maidian.service")).unwrap();
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |k: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|(key, _)| *key == k)
            .map(|(_, v)| *v)
            .collect()
    };
    let exec = get("ExecStart")[0];
    assert!(
        exec.starts_with("/usr/local/bin/maidian-collector --config "),
        "{exec}"
    );
    for env in get("Environment") {
        let name = env.split('=').next().unwrap();
        assert!(known(name), "{name} is not read by the collector");
    }
    assert!(get("Environment").contains(&"MALLOC_ARENA_MAX=2"));
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("MALLOC_ARENA_MAX=2"),
        "the image bounds malloc's arenas"
    );
    assert_eq!(get("KillSignal"), ["SIGTERM"]);
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "maidian"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(get(k), [v], "{k}");
    }
    assert!(get("WantedBy").contains(&"multi-user.target"));
}
