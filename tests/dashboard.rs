//! The admin listener's `/dashboard` and `conf/grafana-dashboard.json`: the
//! page is served whole with no external URL in it, and both read only
//! metrics a running server exports, the same ones, in panels of the same
//! titles.

mod common;

use std::collections::BTreeSet;

use common::cache::dir_guard;
use common::*;

const GRAFANA: &str = include_str!("../conf/grafana-dashboard.json");

/// A server with an admin listener and a cache, and its `/dashboard` answer.
/// The cache directory's guard comes first: dropped last.
fn serve_dashboard() -> (
    TempDir,
    DemoOrigin,
    edgeslice::server::runtime::Server,
    HttpResponse,
) {
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        cache: Some(CacheSetup::fresh("dashboard")),
        ..Setup::default()
    };
    let dir = dir_guard(&setup);
    let server = start_server(&format!("{}{ADMIN}", config_text(origin.addr(), &setup)));
    let resp = get(server.admin_addr().unwrap(), "/dashboard", &[]).unwrap();
    (dir, origin, server, resp)
}

/// The series names `/metrics` declares in its `# TYPE` lines, a histogram's
/// `_bucket`, `_sum` and `_count` included. Declared, not sampled: a family
/// with no sample yet (`edgeslice_peer_up` without `[cluster]`) counts.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let mut words = line.strip_prefix("# TYPE ").unwrap_or("").split(' ');
        if let (Some(name), Some(kind)) = (words.next(), words.next()) {
            if kind == "histogram" {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            }
            names.insert(name.to_string());
        }
    }
    names
}

/// Every `edgeslice_...` metric name written in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    text.match_indices("edgeslice_")
        .map(|(at, _)| {
            let rest = &text[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect()
}

/// A histogram's series named by its family, so the page's
/// `..._seconds` and Grafana's `..._seconds_bucket` compare equal.
fn families(names: &BTreeSet<String>) -> BTreeSet<String> {
    names
        .iter()
        .map(|n| n.strip_suffix("_bucket").unwrap_or(n).to_string())
        .collect()
}

/// The `title: "..."` of each of the page's panels.
fn page_titles(page: &str) -> BTreeSet<String> {
    page.match_indices("title: \"")
        .map(|(at, m)| {
            let rest = &page[at + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

fn metrics_text(server: &edgeslice::server::runtime::Server) -> String {
    let resp = get(server.admin_addr().unwrap(), "/metrics", &[]).unwrap();
    assert_eq!(resp.status, 200);
    String::from_utf8(resp.body).unwrap()
}

#[test]
fn dashboard_is_one_page_with_no_external_url() {
    let (_dir, _origin, _server, resp) = serve_dashboard();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = String::from_utf8(resp.body).expect("the page is UTF-8");
    assert_eq!(page, edgeslice::server::admin::DASHBOARD);
    assert!(page.starts_with("<!doctype html>"), "{}", &page[..40]);
    assert!(page.contains("<canvas") || page.contains("createElement(\"canvas\")"));
    let lower = page.to_ascii_lowercase();
    // Nothing is loaded from anywhere: no scheme, no protocol-relative URL
    // in an attribute, a CSS url() or a string, no external script or style.
    for banned in [
        "://",
        "<script src",
        "<link",
        "@import",
        "\"//",
        "'//",
        "`//",
        "url(//",
        "url(\"//",
        "url('//",
        "src=//",
        "href=//",
    ] {
        if let Some(at) = lower.find(banned) {
            let around = &page[at.saturating_sub(60)..(at + 60).min(page.len())];
            panic!("the dashboard holds {banned:?}: ...{around}...");
        }
    }
    for attr in ["src=", "href=", "action="] {
        assert!(
            !lower.contains(attr),
            "the dashboard has an {attr} attribute"
        );
    }
}

#[test]
fn every_metric_the_dashboard_reads_is_exported() {
    let (_dir, _origin, server, resp) = serve_dashboard();
    let page = String::from_utf8(resp.body).unwrap();
    let exported = exported(&metrics_text(&server));
    let read = names_in(&page);
    assert!(read.len() >= 15, "too few metric names found: {read:?}");
    let missing: Vec<_> = read.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard reads {missing:?}, which /metrics does not export"
    );
    // The page's METRICS table is the one place it names metrics.
    let table = &page[page.find("const METRICS = {").expect("a METRICS table")..];
    let table = &table[..table.find("};").unwrap()];
    assert_eq!(names_in(table), read, "a metric named outside METRICS");
}

#[test]
fn grafana_dashboard_reads_the_same_metrics_per_instance() {
    let doc: serde_json::Value = serde_json::from_str(GRAFANA).expect("valid JSON");
    let input = &doc["__inputs"][0];
    assert_eq!(input["name"], "DS_PROMETHEUS", "{input}");
    assert_eq!(input["pluginId"], "prometheus", "{input}");
    let vars = doc["templating"]["list"].as_array().expect("templating");
    let instance = vars.iter().find(|v| v["name"] == "instance");
    let instance = instance.expect("an `instance` template variable");
    assert_eq!(instance["datasource"]["uid"], "${DS_PROMETHEUS}");

    let panels = doc["panels"].as_array().expect("panels");
    let mut titles = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a title");
        titles.insert(title.to_string());
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            exprs.push((title, t["expr"].as_str().expect("an expr").to_string()));
        }
    }
    // Each metric is selected on the chosen instances.
    for (title, expr) in &exprs {
        for (at, _) in expr.match_indices("edgeslice_") {
            let rest = &expr[at..];
            let selector = &rest[rest.find(['{', '[', ')', ' ']).unwrap_or(rest.len())..];
            assert!(
                selector.starts_with("{instance=~\"$instance\""),
                "{title}: `{expr}` does not filter on $instance"
            );
        }
    }

    let (_dir, _origin, server, resp) = serve_dashboard();
    let page = String::from_utf8(resp.body).unwrap();
    let exported = exported(&metrics_text(&server));
    let all: String = exprs.iter().map(|(_, e)| e.as_str()).collect();
    let used = names_in(&all);
    let missing: Vec<_> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "Grafana queries {missing:?}, which /metrics does not export"
    );
    assert_eq!(families(&used), families(&names_in(&page)));
    assert_eq!(
        titles,
        page_titles(&page),
        "Grafana's panels against the page's"
    );
}
