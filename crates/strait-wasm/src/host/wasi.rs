//! The WASI imports a proxy-wasm SDK links against, as Envoy provides them: real clocks and randomness, stdout and stderr into the plugin log, an empty environment and argument list, `proc_exit` as a trap, and everything else denied; plus stubs for the imports nobody implements.
//!
//! Each function is linked under `wasi_snapshot_preview1` and under the older
//! `wasi_unstable` (what AssemblyScript's proxy-wasm SDK imports `proc_exit` from, and Envoy
//! also provides): the functions linked here have the same signatures and errno values in both.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, ExternType, Linker, Module, Val, ValType};

use super::{read, write, write_u32, HostState};
use crate::abi::{errno, Status};

type C<'a> = Caller<'a, HostState>;
const WASI: &str = "wasi_snapshot_preview1";
const WASI_UNSTABLE: &str = "wasi_unstable";

/// Whether `module` is one of the WASI module names we answer.
fn is_wasi(module: &str) -> bool {
    module == WASI || module == WASI_UNSTABLE
}

/// The error a guest's `proc_exit` traps with.
#[derive(Debug)]
pub struct ProcExit(pub i32);

impl std::fmt::Display for ProcExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proc_exit({})", self.0)
    }
}

impl std::error::Error for ProcExit {}

fn e(r: Result<(), Status>) -> i32 {
    match r {
        Ok(()) => errno::SUCCESS,
        Err(_) => errno::FAULT,
    }
}

/// Links the implemented WASI functions under both module names.
pub(crate) fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    for m in [WASI, WASI_UNSTABLE] {
        link_module(l, m)?;
    }
    Ok(())
}

fn link_module(l: &mut Linker<HostState>, wasi: &str) -> wasmtime::Result<()> {
    l.func_wrap(
        wasi,
        "fd_write",
        |mut c: C, fd: i32, iovs: i32, n: i32, ret: i32| -> i32 {
            if fd != 1 && fd != 2 {
                return errno::BADF;
            }
            let mut written = 0u32;
            for i in 0..n.max(0) {
                let Ok(iov) = read(&mut c, iovs.wrapping_add(i * 8), 8) else {
                    return errno::FAULT;
                };
                let ptr = i32::from_le_bytes(iov[0..4].try_into().expect("4 bytes"));
                let len = i32::from_le_bytes(iov[4..8].try_into().expect("4 bytes"));
                let Ok(data) = read(&mut c, ptr, len) else {
                    return errno::FAULT;
                };
                written = written.wrapping_add(data.len() as u32);
                let h = c.data_mut();
                let buf = &mut h.out[(fd - 1) as usize];
                buf.extend_from_slice(&data);
                // Whole lines go to the log; a partial line waits (bounded) for its end.
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let level = if fd == 1 { 2 } else { 4 };
                    crate::log::plugin_log(
                        &h.plugin.name,
                        level,
                        String::from_utf8_lossy(&line[..line.len() - 1]).as_ref(),
                    );
                }
                if buf.len() > 4096 {
                    let line = std::mem::take(buf);
                    crate::log::plugin_log(&h.plugin.name, 2, &String::from_utf8_lossy(&line));
                }
            }
            e(write_u32(&mut c, ret, written))
        },
    )?;
    for (sizes, get) in [
        ("environ_sizes_get", "environ_get"),
        ("args_sizes_get", "args_get"),
    ] {
        l.func_wrap(wasi, sizes, |mut c: C, count: i32, size: i32| -> i32 {
            e(write_u32(&mut c, count, 0).and_then(|_| write_u32(&mut c, size, 0)))
        })?;
        l.func_wrap(wasi, get, |_c: C, _a: i32, _b: i32| -> i32 {
            errno::SUCCESS
        })?;
    }
    l.func_wrap(
        wasi,
        "clock_time_get",
        |mut c: C, id: i32, _precision: i64, ret: i32| -> i32 {
            let nanos = match id {
                0 => SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                1..=3 => monotonic_nanos(),
                _ => return errno::INVAL,
            };
            e(write(&mut c, ret, &nanos.to_le_bytes()))
        },
    )?;
    l.func_wrap(
        wasi,
        "clock_res_get",
        |mut c: C, _id: i32, ret: i32| -> i32 { e(write(&mut c, ret, &1u64.to_le_bytes())) },
    )?;
    l.func_wrap(wasi, "random_get", |mut c: C, ptr: i32, len: i32| -> i32 {
        use ring::rand::SecureRandom;
        let len = len as u32 as usize;
        if len > 1 << 20 {
            return errno::INVAL;
        }
        let mut buf = vec![0u8; len];
        if ring::rand::SystemRandom::new().fill(&mut buf).is_err() {
            return errno::INVAL;
        }
        e(write(&mut c, ptr, &buf))
    })?;
    l.func_wrap(wasi, "sched_yield", |_c: C| -> i32 { errno::SUCCESS })?;
    l.func_wrap(
        wasi,
        "proc_exit",
        |mut c: C, code: i32| -> wasmtime::Result<()> {
            c.data_mut().exit = Some(code);
            Err(wasmtime::Error::new(ProcExit(code)))
        },
    )?;
    Ok(())
}

fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Links a stub for every import of `module` the linker lacks: `env` functions answer
/// `Unimplemented`, WASI ones `EBADF` (file descriptors: so preopen discovery ends cleanly)
/// or `ENOTCAPABLE`; anything else, or a stub with a result it cannot give, traps if called.
pub(crate) fn stubs(l: &mut Linker<HostState>, module: &Module) {
    for import in module.imports() {
        let ExternType::Func(ty) = import.ty() else {
            continue;
        };
        let (m, name) = (import.module(), import.name());
        let answer = match (m, ty.results().collect::<Vec<_>>().as_slice()) {
            ("env", [ValType::I32]) => Some(Status::Unimplemented.code()),
            (m, [ValType::I32]) if is_wasi(m) && name.starts_with("fd_") => Some(errno::BADF),
            (m, [ValType::I32]) if is_wasi(m) => Some(errno::NOTCAPABLE),
            _ => None,
        };
        let what = format!("{m}::{name}");
        // Fails for the functions linked already (no shadowing): those are kept.
        let _ = l.func_new(
            m,
            name,
            ty.clone(),
            move |_c, _params, results| match answer {
                Some(code) => {
                    results[0] = Val::I32(code);
                    Ok(())
                }
                None => Err(wasmtime::Error::msg(format!(
                    "{what} is not available to plugins"
                ))),
            },
        );
    }
}
