//! Tests of the `config:` section and of reading etcd bootstrap files.

use std::time::Duration;

use crate::parse;
use crate::provider::{bootstrap, Password, ProviderKind, PASSWORD_ENV};

const LISTENER: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n";

fn first_error(yaml: &str) -> String {
    match bootstrap("b.yaml", yaml, None) {
        Err(e) => e.0[0].to_string(),
        Ok(b) => panic!("expected an error, got {b:?}"),
    }
}

#[test]
fn without_config_section_the_provider_is_the_file() {
    let loaded = parse("f.yaml", LISTENER, None).unwrap();
    assert_eq!(loaded.config.provider.kind, ProviderKind::File);
    assert!(loaded.config.provider.etcd.is_none());
    assert_eq!(bootstrap("f.yaml", LISTENER, None).unwrap(), None);
}

#[test]
fn etcd_defaults_are_filled_in() {
    let b = bootstrap("b.yaml", "config:\n  provider: etcd\n", None)
        .unwrap()
        .unwrap();
    assert_eq!(b.etcd.endpoints, ["http://127.0.0.1:2379"]);
    assert_eq!(b.etcd.prefix, "/strait/");
    assert_eq!(b.etcd.dial_timeout, Duration::from_secs(2));
    assert_eq!(b.etcd.username, None);
    assert_eq!(b.etcd.password, None);
    assert_eq!(b.etcd.cache, None);
}

#[test]
fn username_alone_reads_the_password_from_the_environment() {
    let b = bootstrap(
        "b.yaml",
        "config:\n  provider: etcd\n  username: strait\n",
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(b.etcd.password, Some(Password::Env(PASSWORD_ENV.into())));
    assert!(!format!("{:?}", Password::Literal("hunter2".into())).contains("hunter2"));
}

#[test]
fn a_bootstrap_may_not_hold_sections_that_come_from_etcd() {
    let e = first_error(&format!("config:\n  provider: etcd\n{LISTENER}"));
    assert!(
        e.starts_with("b.yaml:4:3: `listeners` comes from etcd"),
        "{e}"
    );
    let e = first_error("server:\n  drain_timeout: 1s\nconfig:\n  provider: etcd\n");
    assert!(e.starts_with("b.yaml:1:1: `server` comes from etcd"), "{e}");
}

#[test]
fn bad_etcd_settings_are_located() {
    let e = first_error("config:\n  provider: etcd\n  endpoints: [127.0.0.1:2379]\n");
    assert!(e.starts_with("b.yaml:3:15: config.endpoints"), "{e}");
    let e = first_error("config:\n  provider: etcd\n  prefix: strait\n");
    assert!(e.starts_with("b.yaml:3:11: config.prefix"), "{e}");
    let e = first_error("config:\n  provider: etcd\n  endpoints: [https://e:2379]\n");
    assert!(e.contains("need config.tls"), "{e}");
    let e = first_error("config:\n  provider: zookeeper\n");
    assert!(e.contains("unknown provider `zookeeper`"), "{e}");
    let e = first_error("config:\n  provider: etcd\n  password: x\n");
    assert!(e.contains("needs config.username"), "{e}");
    let e = first_error("config:\n  provider: etcd\n  dial_timeout: 2\n");
    assert!(e.contains("has no unit"), "{e}");
}

#[test]
fn etcd_fields_with_the_file_provider_are_errors() {
    let e = parse(
        "f.yaml",
        &format!("{LISTENER}config:\n  endpoints: [http://127.0.0.1:2379]\n"),
        None,
    )
    .unwrap_err();
    assert!(e.0[0].message.contains("only with `provider: etcd`"), "{e}");
}

#[test]
fn the_example_bootstrap_is_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/etcd-bootstrap.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(bootstrap(path, &text, None).unwrap().is_some());
}
