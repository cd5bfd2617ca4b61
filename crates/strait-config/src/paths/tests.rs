use std::os::unix::fs::symlink;

use proptest::prelude::*;

use super::*;

fn dir_with_files() -> (tempfile::TempDir, PathPolicy) {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("allowed");
    std::fs::create_dir_all(allowed.join("certs")).unwrap();
    std::fs::write(allowed.join("certs/site.pem"), "x").unwrap();
    std::fs::write(allowed.join("strait.yaml"), "x").unwrap();
    std::fs::write(tmp.path().join("secret"), "x").unwrap();
    let policy = PathPolicy::new(
        std::slice::from_ref(&allowed),
        &[allowed.join("strait.yaml")],
    )
    .unwrap();
    (tmp, policy)
}

#[test]
fn paths_inside_are_allowed_for_reading_and_writing() {
    let (tmp, p) = dir_with_files();
    let a = tmp.path().join("allowed");
    assert_eq!(p.check(&a.join("certs/site.pem"), Access::Read), Ok(()));
    assert_eq!(p.check(&a.join("certs/missing.pem"), Access::Read), Ok(()));
    assert_eq!(p.check(&a.join("access.log"), Access::Write), Ok(()));
    assert_eq!(p.check(&a.join("logs/x/access.log"), Access::Write), Ok(()));
}

#[test]
fn outside_paths_get_the_same_answer_whether_they_exist_or_not() {
    let (tmp, p) = dir_with_files();
    let exists = p
        .check(&tmp.path().join("secret"), Access::Read)
        .unwrap_err();
    let missing = p
        .check(&tmp.path().join("nothing"), Access::Read)
        .unwrap_err();
    assert_eq!(
        exists.replace("secret", "X"),
        missing.replace("nothing", "X"),
        "the error must not tell an existing file from a missing one"
    );
    assert!(exists.contains("is outside the directories"), "{exists}");
    assert!(p.check(Path::new("/etc/cron.d/x"), Access::Write).is_err());
}

#[test]
fn dot_dot_cannot_climb_out() {
    let (tmp, p) = dir_with_files();
    let a = tmp.path().join("allowed");
    assert!(p.check(&a.join("../secret"), Access::Read).is_err());
    assert!(p
        .check(&a.join("certs/../../secret"), Access::Write)
        .is_err());
    assert_eq!(
        p.check(&a.join("certs/../certs/site.pem"), Access::Read),
        Ok(())
    );
}

#[test]
fn a_symbolic_link_inside_that_leads_out_is_refused() {
    let (tmp, p) = dir_with_files();
    let a = tmp.path().join("allowed");
    symlink(tmp.path().join("secret"), a.join("link.pem")).unwrap();
    symlink(tmp.path(), a.join("up")).unwrap();
    assert!(p.check(&a.join("link.pem"), Access::Read).is_err());
    assert!(p.check(&a.join("link.pem"), Access::Write).is_err());
    assert!(p.check(&a.join("up/new.log"), Access::Write).is_err());
}

#[test]
fn the_configuration_file_is_never_written() {
    let (tmp, p) = dir_with_files();
    let e = p
        .check(&tmp.path().join("allowed/strait.yaml"), Access::Write)
        .unwrap_err();
    assert!(e.contains("configuration file"), "{e}");
    assert_eq!(
        p.check(&tmp.path().join("allowed/strait.yaml"), Access::Read),
        Ok(())
    );
}

#[test]
fn no_directories_allows_nothing() {
    let p = PathPolicy::new(&[], &[]).unwrap();
    let e = p.check(Path::new("/tmp/x"), Access::Write).unwrap_err();
    assert!(e.contains("none are allowed"), "{e}");
}

#[test]
fn a_missing_allowed_directory_is_an_error() {
    assert!(PathPolicy::new(&[PathBuf::from("/no/such/dir/here")], &[]).is_err());
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        "[a-z]{1,3}",
    ]
}

proptest! {
    #[test]
    fn normalize_leaves_no_dot_segments_and_is_idempotent(parts in prop::collection::vec(segment(), 0..12)) {
        let p = PathBuf::from(format!("/{}", parts.join("/")));
        let n = normalize(&p);
        prop_assert!(n.is_absolute());
        prop_assert!(n.components().all(|c| !matches!(c, Component::CurDir | Component::ParentDir)));
        prop_assert_eq!(normalize(&n), n);
    }

    #[test]
    fn a_path_is_allowed_exactly_when_its_normal_form_stays_under_the_directory(
        parts in prop::collection::vec(segment(), 1..10)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let p = PathPolicy::new(&[tmp.path().to_path_buf()], &[]).unwrap();
        let rel = parts.join("/");
        let full = tmp.path().join(&rel);
        // Nothing under the directory exists, so only the names decide.
        let expected = normalize(&full).starts_with(tmp.path().canonicalize().unwrap())
            || normalize(&full).starts_with(tmp.path());
        prop_assert_eq!(p.check(&full, Access::Write).is_ok(), expected, "{}", rel);
    }
}

#[test]
fn a_restricted_document_reports_each_refused_path_at_its_value() {
    let (tmp, p) = dir_with_files();
    let out = tmp.path().join("secret");
    let text = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls: {{ cert: {o}, key: {o} }}\nobservability:\n  access_log: {{ path: {o} }}\n",
        o = out.display()
    );
    let base = tmp.path().join("allowed");
    let lines = |scope: PathScope| -> Vec<(u64, String)> {
        let policy = p.with_scope(scope);
        match crate::parse_restricted("t", &text, Some(&base), Some(&policy)) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|d| (d.line, d.message.split(':').next().unwrap().to_string()))
                    .collect()
            }
        }
    };
    assert_eq!(
        lines(PathScope::All),
        [
            (4, "cert".to_string()),
            (4, "key".to_string()),
            (6, "access_log.path".to_string())
        ]
    );
    // With etcd, `observability` is the operator's bootstrap: only the shared sections count.
    assert_eq!(
        lines(PathScope::Shared),
        [(4, "cert".to_string()), (4, "key".to_string())]
    );
    assert!(
        crate::parse("t", &text, Some(&base)).is_ok(),
        "unrestricted"
    );
}
