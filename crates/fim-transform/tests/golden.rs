//! Golden tests: every fixture record in every format must match the
//! reviewed output committed under `tests/golden/<fixture>/<format>`, one
//! line per record.
//!
//! After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p fim-transform --test golden` and review
//! the diff before committing it.

// Helpers outside `#[test]` functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{FIXTURES, encode, formats, load};

#[test]
fn every_fixture_matches_its_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut mismatches = Vec::new();

    for fixture in &FIXTURES {
        let records = load(fixture);
        for format in formats() {
            let encoder = fim_transform::build(&format.config).unwrap();
            let mut actual = String::new();
            for record in &records {
                let line = encode(encoder.as_ref(), record);
                assert!(
                    !line.contains('\n'),
                    "{} {}: output spans lines",
                    fixture.name,
                    format.file
                );
                actual.push_str(&line);
                actual.push('\n');
            }

            let path = root.join(fixture.name).join(format.file);
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &actual).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            if expected != actual {
                mismatches.push(path.display().to_string());
            }
        }
    }

    assert!(
        mismatches.is_empty(),
        "outputs differ from golden files (rerun with UPDATE_GOLDEN=1 and review the diff): {mismatches:#?}"
    );
}
