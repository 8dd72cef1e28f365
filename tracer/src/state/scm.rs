//! SCM_RIGHTS parsing: the descriptors a `recvmsg` installed, from the control bytes the kernel
//! wrote back (`struct cmsghdr` sequence, include/linux/socket.h, 8-byte aligned on x86_64).

const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const CMSG_HDR: usize = 16;

/// Calls `f` for every fd in every SCM_RIGHTS message of `control`. Truncated input is tolerated:
/// only whole descriptors are reported.
pub fn for_each_received_fd(control: &[u8], mut f: impl FnMut(i32)) {
    let mut off = 0usize;
    while off + CMSG_HDR <= control.len() {
        let word = |at: usize, n: usize| -> Option<&[u8]> { control.get(at..at + n) };
        let Some(len) = word(off, 8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes) else {
            break;
        };
        let Some(level) = word(off + 8, 4).and_then(|b| b.try_into().ok()).map(i32::from_ne_bytes) else {
            break;
        };
        let Some(ty) = word(off + 12, 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_ne_bytes)
        else {
            break;
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len < CMSG_HDR {
            break;
        }
        if level == SOL_SOCKET && ty == SCM_RIGHTS {
            let end = off.saturating_add(len).min(control.len());
            let mut p = off + CMSG_HDR;
            while p + 4 <= end {
                if let Some(b) = control.get(p..p + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                    f(i32::from_ne_bytes(b));
                }
                p += 4;
            }
        }
        // CMSG_NXTHDR: advance by the length rounded up to the 8-byte alignment.
        off = match len.checked_add(7).and_then(|l| off.checked_add(l & !7)) {
            Some(o) => o,
            None => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, ty: i32, payload: &[u8]) -> Vec<u8> {
        let len = (CMSG_HDR + payload.len()) as u64;
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 8 != 0 {
            v.push(0);
        }
        v
    }

    fn fds(control: &[u8]) -> Vec<i32> {
        let mut out = Vec::new();
        for_each_received_fd(control, |fd| out.push(fd));
        out
    }

    #[test]
    fn finds_fds_across_messages_and_skips_other_types() {
        let mut c = cmsg(SOL_SOCKET, 2 /* SCM_CREDENTIALS */, &[0u8; 12]);
        c.extend(cmsg(
            SOL_SOCKET,
            SCM_RIGHTS,
            &[5i32.to_ne_bytes(), 9i32.to_ne_bytes()].concat(),
        ));
        c.extend(cmsg(SOL_SOCKET, SCM_RIGHTS, &7i32.to_ne_bytes()));
        assert_eq!(fds(&c), vec![5, 9, 7]);
    }

    #[test]
    fn tolerates_truncation_and_garbage() {
        let c = cmsg(
            SOL_SOCKET,
            SCM_RIGHTS,
            &[3i32.to_ne_bytes(), 4i32.to_ne_bytes()].concat(),
        );
        assert_eq!(fds(&c[..22]), vec![3]);
        assert!(fds(&[0xff; 7]).is_empty());
        let mut bad = vec![0u8; 32];
        bad[..8].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert!(fds(&bad).is_empty());
        let mut zero = cmsg(SOL_SOCKET, SCM_RIGHTS, &1i32.to_ne_bytes());
        zero[..8].copy_from_slice(&0u64.to_ne_bytes());
        assert!(fds(&zero).is_empty());
    }
}
