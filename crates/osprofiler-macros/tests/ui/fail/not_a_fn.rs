use osprofiler::trace;

#[trace("rpc")]
struct Server {
    id: u32,
}

fn main() {
    let _ = Server { id: 1 }.id;
}
