//! Zero-downtime binary upgrade: the running process hands its listening sockets to the new one over a Unix socket (SCM_RIGHTS), then drains and exits; no queued connection is reset.

use std::{
    io::{BufRead, BufReader, IoSlice, IoSliceMut, Write},
    mem::MaybeUninit,
    net::SocketAddr,
    os::{fd::AsFd, unix::net::UnixStream},
    path::{Path, PathBuf},
    time::Duration,
};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The most sockets handed over at once (the kernel's SCM_MAX_FD is 253).
const MAX_FDS: usize = 200;
const MAX_HEADER: usize = 64 * 1024;

/// One handed-over socket: which listener it served and on which configured address.
#[derive(Serialize, Deserialize, Debug)]
struct Entry {
    name: String,
    addr: SocketAddr,
}

/// Sockets received from the old process, and the connection to tell it we are serving.
pub struct Inherited {
    /// Listening sockets by listener name and configured address (the admin listener is
    /// named [`strait_control::admin_listener::HANDOFF_NAME`]).
    pub sockets: Vec<(String, SocketAddr, std::net::TcpListener)>,
    old: UnixStream,
}

impl Inherited {
    /// Tells the old process the new one serves: it stops accepting, drains and exits.
    pub fn ready(mut self) {
        if let Err(e) = self.old.write_all(b"ready\n") {
            tracing::warn!(error = %e, "cannot tell the old process to drain");
        }
    }
}

/// Asks the process listening on `path` for its sockets. `Ok(None)` when nobody listens
/// (first start, or a stale socket file).
pub fn receive(path: &Path) -> std::io::Result<Option<Inherited>> {
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    (&stream).write_all(b"handoff\n")?;
    let mut header = vec![0u8; MAX_HEADER];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(
        stream.as_fd(),
        &mut [IoSliceMut::new(&mut header)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    let entries: Vec<Entry> = serde_json::from_slice(&header[..msg.bytes])
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    if entries.len() != fds.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} sockets described, {} received",
                entries.len(),
                fds.len()
            ),
        ));
    }
    let sockets = entries
        .into_iter()
        .zip(fds)
        .map(|(e, fd)| {
            tracing::info!(listener = %e.name, address = %e.addr, "socket inherited from the previous process");
            (e.name, e.addr, std::net::TcpListener::from(fd))
        })
        .collect();
    Ok(Some(Inherited {
        sockets,
        old: stream,
    }))
}

/// Serves hand-off requests on `path` (replacing a stale socket file). Each request gets the
/// sockets from `sockets()`; when the new process reports ready, `done` fires once.
pub async fn serve(
    path: PathBuf,
    sockets: impl Fn() -> Vec<(String, SocketAddr, std::net::TcpListener)> + Send + Sync + 'static,
    done: mpsc::Sender<()>,
) {
    // Whoever connects receives the listening sockets and makes this process exit: only the
    // user running Strait may. The socket is restricted under a temporary name and renamed into
    // place, so it is never reachable with looser permissions.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let bound = tokio::net::UnixListener::bind(&tmp).and_then(|l| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, &path)?;
        Ok(l)
    });
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::error!(path = %path.display(), error = %e, "cannot listen for upgrades");
            return;
        }
    };
    tracing::info!(path = %path.display(), "upgrade socket bound");
    let sockets = std::sync::Arc::new(sockets);
    loop {
        let conn = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "upgrade socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Only the user running Strait (the owner of the socket file) may take its sockets.
        let owner = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&path).map(|m| m.uid()).ok()
        };
        let peer = conn.peer_cred().ok().map(|c| c.uid());
        if peer.is_none() || peer != owner {
            tracing::warn!(peer_uid = ?peer, "upgrade request from another user refused");
            continue;
        }
        let Ok(std) = conn.into_std() else { continue };
        let sockets = sockets.clone();
        // Blocking I/O with a timeout: a hand-off is rare and must not hold a worker thread.
        let r = tokio::task::spawn_blocking(move || hand_off(std, &*sockets)).await;
        match r {
            Ok(Ok(true)) => {
                tracing::info!("new process is serving; draining");
                let _ = done.send(()).await;
                // Keep the socket file: it now belongs to the new process.
                return;
            }
            Ok(Ok(false)) => tracing::warn!("new process went away before serving; still serving"),
            Ok(Err(e)) => tracing::warn!(error = %e, "socket hand-off failed; still serving"),
            Err(e) => tracing::warn!(error = %e, "socket hand-off task failed"),
        }
    }
}

fn hand_off(
    stream: UnixStream,
    sockets: &dyn Fn() -> Vec<(String, SocketAddr, std::net::TcpListener)>,
) -> std::io::Result<bool> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim() != "handoff" {
        return Ok(false);
    }
    let mut socks = sockets();
    socks.truncate(MAX_FDS);
    let entries: Vec<Entry> = socks
        .iter()
        .map(|(name, addr, _)| Entry {
            name: name.clone(),
            addr: *addr,
        })
        .collect();
    let header = serde_json::to_vec(&entries).map_err(std::io::Error::other)?;
    let fds: Vec<_> = socks.iter().map(|(_, _, l)| l.as_fd()).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("too many sockets to hand over"));
    }
    sendmsg(
        stream.as_fd(),
        &[IoSlice::new(&header)],
        &mut control,
        SendFlags::empty(),
    )?;
    // The new process compiles its configuration and binds what it did not inherit; it says
    // "ready" once it serves, or closes the connection if it failed (we then keep serving).
    line.clear();
    reader.read_line(&mut line)?;
    Ok(line.trim() == "ready")
}
