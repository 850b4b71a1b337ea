//! The activation request parser (what a vendor reads from a site) must refuse any input
//! without panicking, and accept only requests whose id matches their content.
#![no_main]

use ferry_license::ActivationRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = ActivationRequest::parse(data) {
        let again = ActivationRequest::parse(req.to_armored().as_bytes());
        assert_eq!(again.ok().as_ref(), Some(&req));
    }
    let _ = ActivationRequest::from_json(data);
});
