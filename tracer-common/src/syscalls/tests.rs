use super::*;

fn bits_of(nr: libc::c_long) -> u32 {
    spec(nr as u32).map(|s| s.capture.bits()).unwrap_or(0)
}

#[test]
fn spec_lookup_finds_every_entry() {
    for s in X86_64 {
        assert_eq!(spec(s.nr).map(|x| x.name), Some(s.name));
    }
    assert!(spec(libc::SYS_read as u32).is_none(), "read is not followed");
    assert!(spec(10_000).is_none());
    assert!(X86_64.len() < 255);
}

#[test]
fn numbers_are_unique_and_in_range() {
    for (i, a) in X86_64.iter().enumerate() {
        assert!(a.nr < crate::config::MAX_SYSCALL_NR, "{} out of range", a.name);
        for b in &X86_64[i + 1..] {
            assert_ne!(a.nr, b.nr, "{} and {} share a number", a.name, b.name);
        }
    }
}

#[test]
fn capture_bits_round_trip_fields() {
    let c = bits_of(libc::SYS_socketpair);
    assert_eq!(c & bits::ENABLED, bits::ENABLED);
    assert_eq!((c >> bits::DATA_SHIFT) & bits::DATA_MASK, bits::DATA_FD_PAIR);
    assert_eq!((c >> bits::ARG_SHIFT) & bits::ARG_MASK, 3);
    assert_ne!(c & bits::STACK, 0);
    let close = bits_of(libc::SYS_close);
    assert_eq!(close & bits::STACK, 0);
    let fcntl = bits_of(libc::SYS_fcntl);
    assert_ne!(fcntl & bits::FCNTL_FILTER, 0);
    let semctl = bits_of(libc::SYS_semctl);
    assert_eq!(
        (semctl >> bits::FILTER_SHIFT) & bits::FILTER_MASK,
        bits::FILTER_IPC_RMID
    );
    assert_eq!((semctl >> bits::FILTER_ARG_SHIFT) & bits::ARG_MASK, 2);
    assert_eq!(semctl & bits::STACK, 0);
    let select = bits_of(libc::SYS_select);
    assert_eq!(
        (select >> bits::FILTER_SHIFT) & bits::FILTER_MASK,
        bits::FILTER_ABOVE_FD_SETSIZE
    );
    assert_eq!(
        (select >> bits::FAIL_CLASS_SHIFT) & bits::FAIL_CLASS_MASK,
        bits::FAIL_ANY
    );
    let fork = bits_of(libc::SYS_fork);
    assert_ne!(fork & bits::FAILURES_ONLY, 0);
    assert_eq!(
        (fork >> bits::FAIL_CLASS_SHIFT) & bits::FAIL_CLASS_MASK,
        bits::FAIL_AGAIN
    );
    let semget = bits_of(libc::SYS_semget);
    assert_eq!(
        (semget >> bits::FAIL_CLASS_SHIFT) & bits::FAIL_CLASS_MASK,
        bits::FAIL_NO_SPACE
    );
    let exec = bits_of(libc::SYS_execve);
    assert_eq!((exec >> bits::DATA_SHIFT) & bits::DATA_MASK, bits::DATA_INITIAL_STACK);
    assert_eq!(exec & bits::FAILURES, 0);
    let mmap = bits_of(libc::SYS_mmap);
    assert_eq!(
        (mmap >> bits::FILTER_SHIFT) & bits::FILTER_MASK,
        bits::FILTER_CODE_MAPPING
    );
    assert_eq!(mmap & (bits::STACK | bits::FAILURES), 0);
}

#[test]
fn sigaction_and_timed_write_captures() {
    let sa = bits_of(libc::SYS_rt_sigaction);
    assert_eq!(
        (sa >> bits::FILTER_SHIFT) & bits::FILTER_MASK,
        bits::FILTER_SIGCHLD_ACTION
    );
    assert_eq!((sa >> bits::DATA_SHIFT) & bits::DATA_MASK, bits::DATA_WORD);
    assert_eq!((sa >> bits::ARG_SHIFT) & bits::ARG_MASK, 1);
    assert_eq!(sa & (bits::STACK | bits::FAILURES | bits::TIMED), 0);
    assert!(installs_sigchld_action(&[17, 0x7ffd_0000, 0, 8, 0, 0]));
    assert!(
        !installs_sigchld_action(&[17, 0, 0x7ffd_0000, 8, 0, 0]),
        "a query, not an install"
    );
    assert!(!installs_sigchld_action(&[2, 0x7ffd_0000, 0, 8, 0, 0]));
    for nr in [libc::SYS_write, libc::SYS_writev, libc::SYS_sendto, libc::SYS_sendmsg] {
        let w = bits_of(nr);
        assert_ne!(w & bits::TIMED, 0, "{nr}");
        assert_ne!(w & bits::STACK, 0, "{nr}");
        assert_eq!((w >> bits::FAIL_CLASS_SHIFT) & bits::FAIL_CLASS_MASK, bits::FAIL_ANY);
        assert_eq!(spec(nr as u32).map(|s| s.effect), Some(Effect::Write));
    }
    // The fields do not overlap.
    assert_eq!(
        bits::TIMED & ((bits::ARG_MASK << bits::FILTER_ARG_SHIFT) | (bits::FILTER_MASK << bits::FILTER_SHIFT)),
        0
    );
    assert_eq!(
        (bits::FILTER_MASK << bits::FILTER_SHIFT) & (bits::ARG_MASK << bits::FILTER_ARG_SHIFT),
        0
    );
}

#[test]
fn code_mappings_are_executable_file_mappings() {
    // The loader mapping libc's text: mmap(addr, len, R|X, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, off).
    assert!(maps_code(&[0x7f00_0002_8000, 0x17_5000, 0x5, 0x812, 3, 0x28000]));
    // Reading a file, an anonymous JIT buffer, MAP_ANONYMOUS with fd -1.
    assert!(!maps_code(&[0, 4096, 0x1, 0x2, 3, 0]));
    assert!(!maps_code(&[0, 4096, 0x7, 0x22, u64::MAX, 0]));
    assert!(!maps_code(&[0, 4096, 0x5, 0x22, 0, 0]));
}
