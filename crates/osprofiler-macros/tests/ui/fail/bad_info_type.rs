use osprofiler::trace;

#[trace("rpc", info = 5u8)]
fn bad_info() {}

fn main() {
    bad_info();
}
