//! The shape of the crate: no import cycle between modules or between the
//! layer folders, and no import against the layer order (server > proxy >
//! slice > cluster > cache > origin > http > net > config > error; ops::metrics shared).
//!
//! Measured by `tools/modgraph` (Python 3, standard library only) from the
//! source's own `use crate::...` paths, so a change that ties two layers in a
//! knot fails here rather than in review.

use std::process::Command;

#[test]
fn no_import_cycles_and_no_import_against_the_layers() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{root}/tools/modgraph"))
        .arg("--json")
        .output()
        .expect("python3 runs tools/modgraph");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let graph: serde_json::Value = serde_json::from_slice(&out.stdout).expect("modgraph JSON");
    assert!(graph["modules"].as_u64().unwrap() > 40, "{graph}");
    assert_eq!(
        graph["cycles"].as_array().map(Vec::len),
        Some(0),
        "module cycles: {}",
        graph["cycles"]
    );
    assert_eq!(
        graph["folders"]["cycles"].as_array().map(Vec::len),
        Some(0),
        "folder cycles: {}",
        graph["folders"]
    );
    assert_eq!(
        graph["layers"]["against"].as_array().map(Vec::len),
        Some(0),
        "imports against the layer order: {}",
        graph["layers"]
    );
}
