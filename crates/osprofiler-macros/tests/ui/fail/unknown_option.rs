use osprofiler::trace;

#[trace("rpc", hide_arguments = true)]
fn misspelled() {}

#[trace("rpc", trace_private = true)]
fn impl_only_option() {}

#[trace("rpc", hide_args = "yes")]
fn not_a_bool() {}

#[trace("rpc", hide_args = true, hide_args = false)]
fn twice() {}

#[trace("rpc", "db")]
fn two_names() {}

fn main() {
    misspelled();
    impl_only_option();
    not_a_bool();
    twice();
    two_names();
}
