//! The shared tier's tests.

use super::*;

#[test]
fn key_names_hold_no_user_material_and_differ_per_variant() {
    let client = Arc::new(
        RedisClient::new(
            crate::shared::RedisSettings::from_url("redis://127.0.0.1:1/0").unwrap(),
            crate::clock::system(),
        )
        .unwrap(),
    );
    let s = Shared::new(
        client,
        Limits {
            max_entry_bytes: 1024,
            max_bytes: None,
        },
        crate::clock::system(),
    );
    let alice = super::super::key::primary("/me", "", Some("sub=7:\"alice\";"), []);
    let bob = super::super::key::primary("/me", "", Some("sub=5:\"bob\";"), []);
    let (ka, kb) = (s.entry_key(&alice), s.entry_key(&bob));
    assert_ne!(ka, kb);
    assert!(ka.starts_with("ferrogate:c{cache}:e:"), "{ka}");
    assert_eq!(ka.len(), "ferrogate:c{cache}:e:".len() + 64);
    assert!(!ka.contains("alice") && !ka.contains("/me"));
    let (pi, member) = s.path_index("/me");
    assert!(!pi.contains("/me"));
    assert!(member.starts_with("/me\n"));
    // A path travels as its digest.
    let m = Purge::Path("/users/ann@example.com".into()).message();
    assert!(!String::from_utf8_lossy(&m).contains("ann"));
    assert_eq!(
        Purge::parse(&m),
        Some(Purge::PathDigest(digest_of("/users/ann@example.com")))
    );
    for p in [
        Purge::PathDigest(digest_of("/a")),
        Purge::Prefix("/".into()),
        Purge::Tag("t".into()),
        Purge::All,
    ] {
        assert_eq!(Purge::parse(&p.message()), Some(p));
    }
    assert_eq!(Purge::parse(b""), None);
    assert_eq!(Purge::parse(b"z/a"), None);
}
