//! The license parser and the whole site-side pipeline must refuse any input without panicking.
#![no_main]

use ferry_license::{IssuerKey, LicenseFile, TrustRoot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = LicenseFile::parse(data) {
        // A parsed file re-armors to the same bytes ferry would write.
        let again = LicenseFile::parse(file.to_armored().as_bytes());
        assert_eq!(again.ok().as_ref(), Some(&file));
        // No fuzzer input can carry a signature of a key made just now.
        if let Ok(key) = IssuerKey::generate() {
            assert!(file
                .verify_signature(&TrustRoot::of(vec![key.public()]))
                .is_err());
        }
    }
});
