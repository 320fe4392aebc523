//! Writes seed inputs into `corpus/<target>/` (default `fuzz/corpus`, or the folder given):
//! every payload kind for `receive_check`, every call for `admin_request`, and a real card,
//! envelope, frame, disclosures and cases for the older targets. Not a fuzz target: after
//! `cargo +nightly fuzz build -O -a`, run `fuzz/target/x86_64-unknown-linux-gnu/release/make_seeds`,
//! then minimise with `cargo fuzz cmin`.

fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/corpus").into());
    for (target, seeds) in [
        ("receive_check", trm_fuzz::seeds::receive_check()),
        ("admin_request", trm_fuzz::seeds::admin_request()),
    ] {
        let dir = std::path::Path::new(&root).join(target);
        std::fs::create_dir_all(&dir).expect("corpus folder");
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed_{name}")), bytes).expect("write seed");
        }
        println!("{target}: seeds written to {}", dir.display());
    }
    for (target, name, bytes) in trm_fuzz::seeds::older_targets() {
        let dir = std::path::Path::new(&root).join(target);
        std::fs::create_dir_all(&dir).expect("corpus folder");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }
}
