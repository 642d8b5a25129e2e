//! The bare Pingora passthrough with mimalloc, Tollgate's allocator: see
//! `tollgate_load::passthrough`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tollgate_load::passthrough::main();
}
