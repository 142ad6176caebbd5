//! Pinning a worker's thread to one CPU (`sched_setaffinity`).

use std::io;

/// Pins the calling thread to the `index`-th CPU of those this process may
/// run on (modulo their count).
#[cfg(target_os = "linux")]
pub(crate) fn pin_to_core(index: usize) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is a plain bit array; all zeroes is the empty set.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `allowed` is a valid, writable `cpu_set_t` of `size` bytes;
    // pid 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, size, &mut allowed) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &allowed) })
        .collect();
    let Some(&cpu) = cpus.get(index % cpus.len().max(1)) else {
        return Err(io::Error::other("this process may run on no CPU"));
    };
    // SAFETY: as above, an all-zero `cpu_set_t` is the empty set.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from the allowed set, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: `one` is a valid `cpu_set_t` of `size` bytes; pid 0 is the
    // calling thread.
    if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("could not pin worker {index} to CPU {cpu}: {e}"),
        ));
    }
    Ok(())
}

/// Where there is no `sched_setaffinity` (macOS has no way to pin a thread,
/// only affinity hints; FreeBSD's `cpuset` is not wired up) the workers run
/// unpinned: pinning is a placement optimization, and a pool that asked for
/// it still runs, as it would on a Linux machine whose scheduler ignores it.
#[cfg(not(target_os = "linux"))]
pub(crate) fn pin_to_core(_index: usize) -> io::Result<()> {
    Ok(())
}
