//! The `maidian` CLI beside a running collector, as a new user meets it: the collector holds
//! the embedded store's lock, so the CLI asks it over HTTP (by itself, from `maidian.toml`, or
//! with `--url`/`--read-key`) and answers what the endpoints answer. Errors are one line.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

use common::{now_ms, uuid};
use maidian_testkit::http::{self, Request};
use maidian_testkit::Collector;
use serde_json::{json, Value};

const WRITE_KEY: &str = "wk-remote";
const READ_KEY: &str = "rk-remote";

/// Runs `maidian` in `dir` with a clean `MAIDIAN_*` environment and backtraces asked for.
fn maidian(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = common::binary().with_file_name("maidian");
    assert!(bin.exists(), "{} is not built", bin.display());
    let mut cmd = std::process::Command::new(&bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("MAIDIAN_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The command failed with exactly one line on stderr, no stack trace, and that line says
/// `needle`.
fn one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("backtrace"), "{err}");
    assert!(err.starts_with("maidian: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

#[tokio::test]
async fn the_cli_asks_the_running_collector_when_its_store_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("maidian-data");
    let env: HashMap<String, String> = [
        ("MAIDIAN_DATA_DIR", data.to_str().unwrap()),
        ("MAIDIAN_API_KEY", WRITE_KEY),
        ("MAIDIAN_READ_KEY", READ_KEY),
    ]
    .iter()
    .chain(common::QUICK_ROLLUPS)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let collector = Collector::start(common::binary(), &env).await.unwrap();
    let addr = collector.addr;
    // The config file the collector would have been started with, as `scripts/demo.sh` does.
    std::fs::write(
        dir.path().join("maidian.toml"),
        format!(
            "[tracking_api]\nlisten = \"{addr}\"\napi_key = \"{WRITE_KEY}\"\nread_key = \"{READ_KEY}\"\n\n[storage]\ndata_dir = \"maidian-data\"\n"
        ),
    )
    .unwrap();

    let now = now_ms();
    let events: Vec<Value> = (0..12)
        .map(|i| {
            let ty = ["page_view", "click", "purchase"][i % 3];
            json!({"event_id": uuid(), "event_type": ty, "user_id": format!("u{}", i % 4),
                   "session_id": format!("s{}", i % 4), "page_url": "https://a.example/p",
                   "timestamp": now - 1000 * i as i64})
        })
        .collect();
    let sent = http::send(
        addr,
        &Request::new("POST", "/api/track/batch")
            .header("content-type", "application/json")
            .header("x-api-key", WRITE_KEY)
            .body(json!({ "events": events }).to_string()),
    )
    .await
    .unwrap();
    assert_eq!(sent.status, 200, "{}", sent.text());
    let get = |path: &str| {
        let path = path.to_string();
        async move {
            http::send(
                addr,
                &Request::new("GET", &path).header("x-api-key", READ_KEY),
            )
            .await
            .unwrap()
        }
    };
    let mut summary = Value::Null;
    for _ in 0..100 {
        summary = get("/api/analytics/summary?days=7").await.json().unwrap();
        if summary["overview"]["total_events"] == 12 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(summary["overview"]["total_events"], 12, "{summary}");

    // No flags at all, in the directory of maidian.toml: the store is locked, so it asks.
    let out = maidian(dir.path(), &["summary", "--days", "7", "--json"], &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("in use by a running collector") && said.contains(&format!("http://{addr}")),
        "{said}"
    );
    assert_eq!(stdout_json(&out), summary);
    // Every reading command answers the endpoint's document.
    for (args, path) in [
        (vec!["stats", "events", "--json"], "/api/stats/events?days=7"),
        (vec!["stats", "pages", "--json"], "/api/stats/pages?days=7"),
        (vec!["retention", "--days", "7", "--json"], "/api/analytics/retention?days=7"),
        (vec!["vitals", "--days", "7", "--json"], "/api/analytics/vitals?days=7"),
        (
            vec!["funnel", "--steps", "page_view,click@https://a.example/p,purchase", "--days", "7", "--json"],
            "/api/analytics/funnel?steps=page_view%2Cclick%40https%3A%2F%2Fa.example%2Fp%2Cpurchase&days=7",
        ),
    ] {
        let cli = stdout_json(&maidian(dir.path(), &args, &[]));
        assert_eq!(cli, get(path).await.json().unwrap(), "{args:?}");
    }
    let funnel = stdout_json(&maidian(
        dir.path(),
        &["funnel", "--steps", "page_view,click,purchase", "--json"],
        &[],
    ));
    assert_eq!(funnel["funnel_steps"][0]["users"], 4, "{funnel}");
    let realtime = stdout_json(&maidian(dir.path(), &["realtime", "--json"], &[]));
    assert_eq!(realtime["recent_events_1h"], 12);
    let sources = stdout_json(&maidian(dir.path(), &["sources", "--json"], &[]));
    assert_eq!(sources["site"], "default");
    assert_eq!(sources["channels"], summary["channels"]);
    let sites = stdout_json(&maidian(dir.path(), &["sites", "--json"], &[]));
    assert_eq!(sites[0]["events"], 12, "{sites}");
    // Tables, the CSV export and the report too.
    let table = maidian(dir.path(), &["summary"], &[]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("total events"));
    let csv = maidian(dir.path(), &["export", "--days", "7"], &[]);
    assert!(csv.status.success());
    assert_eq!(csv.stdout, get("/api/export/events.csv?days=7").await.body);
    assert_eq!(String::from_utf8_lossy(&csv.stdout).lines().count(), 13);
    let report = maidian(dir.path(), &["report", "-o", "r.html"], &[]);
    assert!(report.status.success());
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("</html>"));

    // Explicit --url and --read-key (or their variables) from anywhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}");
    let by_flag = maidian(
        elsewhere.path(),
        &["summary", "--json", "--url", &url, "--read-key", READ_KEY],
        &[],
    );
    assert_eq!(stdout_json(&by_flag)["overview"], summary["overview"]);
    let by_env = maidian(
        elsewhere.path(),
        &["summary", "--json"],
        &[("MAIDIAN_URL", &url), ("MAIDIAN_READ_KEY", READ_KEY)],
    );
    assert_eq!(stdout_json(&by_env)["overview"], summary["overview"]);

    // Errors: one line each, never a stack trace.
    let data_arg = data.to_str().unwrap();
    one_line_error(
        &maidian(elsewhere.path(), &["summary", "--data-dir", data_arg], &[]),
        "--url",
    );
    one_line_error(
        &maidian(
            elsewhere.path(),
            &["summary", "--url", &url, "--read-key", WRITE_KEY],
            &[],
        ),
        "answered 40",
    );
    one_line_error(
        &maidian(elsewhere.path(), &["summary", "--url", &url], &[]),
        "--read-key",
    );
    one_line_error(
        &maidian(
            elsewhere.path(),
            &[
                "summary",
                "--url",
                &url,
                "--read-key",
                READ_KEY,
                "--site",
                "nope",
            ],
            &[],
        ),
        "reads its own site only",
    );
    one_line_error(&maidian(dir.path(), &["rollups", "status"], &[]), "rollups");
    let port = common::free_port();
    one_line_error(
        &maidian(
            elsewhere.path(),
            &[
                "summary",
                "--url",
                &format!("http://127.0.0.1:{port}"),
                "--read-key",
                "k",
            ],
            &[],
        ),
        "cannot reach",
    );
    drop(collector);
}

/// A TLS front for the collector (as a reverse proxy would be), with a self-signed
/// certificate for `localhost`; it records the head of every request it decrypts.
async fn tls_front(
    upstream: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 16 * 1024];
                let Ok(n) = tls.read(&mut buf).await else {
                    return;
                };
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let mut plain = tokio::net::TcpStream::connect(upstream).await.unwrap();
                plain.write_all(&buf[..n]).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, pem, heads)
}

/// `--url https://…`: the CLI talks TLS (rustls), checks the certificate against the web PKI
/// or `--ca-cert`, sends the real host name, and answers what the endpoint answers; a
/// certificate for another name or of an unknown issuer is refused in one line. (Several
/// workers: the TLS front runs while the test waits for the CLI process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_https_with_the_real_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let env: HashMap<String, String> = [
        (
            "MAIDIAN_DATA_DIR",
            dir.path().join("data").to_str().unwrap(),
        ),
        ("MAIDIAN_API_KEY", WRITE_KEY),
        ("MAIDIAN_READ_KEY", READ_KEY),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let collector = Collector::start(common::binary(), &env).await.unwrap();
    let (front, pem, heads) = tls_front(collector.addr).await;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let url = format!("https://localhost:{}", front.port());
    let ca_arg = ca.to_str().unwrap();

    let out = maidian(
        dir.path(),
        &[
            "summary",
            "--json",
            "--url",
            &url,
            "--read-key",
            READ_KEY,
            "--ca-cert",
            ca_arg,
        ],
        &[],
    );
    let over_tls = stdout_json(&out);
    let direct = http::send(
        collector.addr,
        &Request::new("GET", "/api/analytics/summary?days=7").header("x-api-key", READ_KEY),
    )
    .await
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(over_tls["overview"], direct["overview"]);
    let head = heads.lock().unwrap().last().cloned().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("host: localhost:{}", front.port())),
        "{head}"
    );
    // The same CA through the environment.
    let by_env = maidian(
        dir.path(),
        &["summary", "--json"],
        &[
            ("MAIDIAN_URL", &url),
            ("MAIDIAN_READ_KEY", READ_KEY),
            ("MAIDIAN_CA_CERT", ca_arg),
        ],
    );
    assert_eq!(stdout_json(&by_env)["overview"], direct["overview"]);

    // Not signed by a root it trusts, or not for the name asked: refused, in one line.
    one_line_error(
        &maidian(
            dir.path(),
            &["summary", "--url", &url, "--read-key", READ_KEY],
            &[],
        ),
        "TLS",
    );
    one_line_error(
        &maidian(
            dir.path(),
            &[
                "summary",
                "--url",
                &format!("https://127.0.0.1:{}", front.port()),
                "--read-key",
                READ_KEY,
                "--ca-cert",
                ca_arg,
            ],
            &[],
        ),
        "TLS",
    );
    one_line_error(
        &maidian(
            dir.path(),
            &[
                "summary",
                "--url",
                "ftp://localhost",
                "--read-key",
                READ_KEY,
            ],
            &[],
        ),
        "https://",
    );
    drop(collector);
}
