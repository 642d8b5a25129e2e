//! The bare Pingora passthrough with glibc's allocator: see `tollgate_load::passthrough`.

fn main() {
    tollgate_load::passthrough::main();
}
