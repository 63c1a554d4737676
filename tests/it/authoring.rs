//! `tidings plugin check`: an install's checks made offline, with messages an author can act on.

use host::authoring::check;

fn read(guest: &str) -> Vec<u8> {
    std::fs::read(guest).unwrap()
}

async fn refusal(guest: &str, against: &[(&str, &[u8])]) -> String {
    match check(read(guest), against).await {
        Ok(checked) => panic!("{guest} passed:\n{}", checked.report()),
        Err(refusal) => refusal.to_string(),
    }
}

#[tokio::test]
async fn a_plugin_that_would_install_is_described_in_the_authors_syntax() {
    let checked = check(read(integration_tests::NOTIFY_ROOMS), host::bundled::PLUGINS).await.unwrap();
    let report = checked.report();
    assert!(report.starts_with("notify-rooms 0.1.0: NOTE records at /api/v1/notes\n"), "{report}");
    assert!(report.contains("\n  GET    /api/v1/notes/:id "), "{report}");
    assert!(report.contains("\n  GET    /api/v1/user/notes "), "a user view at its absolute path: {report}");
    assert!(report.contains("signed-in"), "{report}");
    assert!(report.contains("socket events: notes:count, notes:huge"), "{report}");
    assert!(
        report.ends_with(&format!("no clash with the {} bundled plugins", host::bundled::PLUGINS.len())),
        "{report}"
    );
}

#[tokio::test]
async fn what_an_install_refuses_is_refused_offline_with_its_reason() {
    let one = read(integration_tests::SWAP_ONE);
    let bundled_swap: &[(&str, &[u8])] = &[("swap_one.wasm", &one)];
    assert_eq!(
        refusal(integration_tests::SWAP_RETYPED, bundled_swap).await,
        "plugin \"swap\" serves SWAP at /swaps; the new version declares RETYPED at /swaps"
    );
    let wider = refusal(integration_tests::SWAP_WIDER, bundled_swap).await;
    assert!(wider.contains("wider grants (read [\"DEPARTMENT\"], write [])"), "{wider}");
    assert!(wider.contains("tidings plugin install --approve-grants FILE"), "{wider}");
    // A new version within the same grants passes.
    assert!(check(read(integration_tests::SWAP_TWO), bundled_swap).await.is_ok());

    let not_wasm = match check(b"[workspace]\n".to_vec(), &[]).await {
        Err(refusal) => refusal.to_string(),
        Ok(_) => panic!("a text file passed"),
    };
    assert!(not_wasm.starts_with("not a WebAssembly file"), "{not_wasm}");
}
