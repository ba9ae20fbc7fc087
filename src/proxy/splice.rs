//! Join two upgraded connections (client side and upstream side) and copy both ways until either
//! side is done, then shut down the other. Nothing is buffered beyond the copy buffers.

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

/// Copy bytes both ways between two upgraded connections. Returns (client→upstream,
/// upstream→client) byte counts.
pub async fn splice(client: Upgraded, upstream: Upgraded) -> std::io::Result<(u64, u64)> {
    let mut a = TokioIo::new(client);
    let mut b = TokioIo::new(upstream);
    tokio::io::copy_bidirectional(&mut a, &mut b).await
}
