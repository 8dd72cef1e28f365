fn main() {
    let mode = match std::env::args().nth(1).as_deref() { Some("fp") => tracer_common::config::StackMode::FramePointer, _ => tracer_common::config::StackMode::Dwarf };
    let mut p = match tracer::probes::Probes::load(tracer::probes::ProbeOptions { stack_mode: mode, ..Default::default() }) { Ok(p) => p, Err(e) => { eprintln!("{e}"); let mut s: Option<&dyn std::error::Error> = std::error::Error::source(&e); while let Some(x) = s { eprintln!("  {x}"); s = x.source(); } std::process::exit(1) } };
    let me = std::process::id();
    p.trace(me).unwrap();
    let mut rb = p.take_ring_buffer().unwrap();
    let f = std::fs::File::open("/etc/hostname").unwrap();
    drop(f);
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    drop((a, b));
    let mut n = 0;
    while let Some(item) = rb.next() {
        n += 1;
        match tracer_common::decode::Record::try_from(&*item) {
            Ok(tracer_common::decode::Record::Syscall(v)) => println!("nr={} ret={} data={:?} stack={} id={:?} ip={:x}", v.core.nr, v.core.ret, String::from_utf8_lossy(v.data()), v.stack.len(), v.detail.map(|d| d.stack_id), v.detail.map(|d| d.user_ip).unwrap_or(0)),
            other => println!("{other:?}"),
        }
    }
    println!("{n} records, losses {:?}", p.losses());
}
