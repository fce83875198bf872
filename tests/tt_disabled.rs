//! Without `tt` / `host-shim` the backend exists and says how to get a build that has it.

#![cfg(not(any(feature = "tt", feature = "host-shim")))]

use pccscope::backend::by_name;
use pccscope::backend::tt::{TtBackend, TtBackendError, TtPrecision, COMPILED};

const _: () = assert!(!COMPILED);

#[test]
fn the_tt_backend_reports_it_is_not_compiled() {
    assert_eq!(
        TtBackend::open(Some("exact")).err(),
        Some(TtBackendError::NotCompiled)
    );
    assert!(TtBackend::with_precision(0, TtPrecision::preset("exact").unwrap()).is_err());
    assert_eq!(TtBackend::implementation(), None);
    let e = by_name("tt", None).err().unwrap();
    assert!(e.contains("not compiled into this build"), "{e}");
    assert!(
        e.contains("--features tt") && e.contains("TT_METAL_HOME"),
        "{e}"
    );
    assert!(e.contains("--features host-shim"), "{e}");
}
