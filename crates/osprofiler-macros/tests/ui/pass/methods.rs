//! `#[trace_impl]` on inherent and trait impls, with every kind of item.
#![deny(warnings)]

use osprofiler::{trace, trace_impl};

#[derive(Debug, Default)]
struct Manager {
    servers: Vec<String>,
}

#[trace_impl("rpc", trace_private = true, info = serde_json::json!({"service": "compute"}))]
impl Manager {
    pub const LIMIT: usize = 10;

    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: String) -> Result<&mut String, String> {
        if self.servers.len() >= Self::LIMIT {
            return Err(format!("{name}: over quota"));
        }
        self.servers.push(name);
        self.servers.last_mut().ok_or_else(String::new)
    }

    fn _private(&self) -> usize {
        self.__dunder()
    }

    fn __dunder(&self) -> usize {
        self.servers.len()
    }

    #[no_trace]
    fn hot(&self) -> bool {
        self.servers.is_empty()
    }

    #[trace("db", hide_result = false)]
    fn own(&self) -> usize {
        self._private()
    }

    pub fn consume(self: Box<Self>) -> Vec<String> {
        self.servers
    }

    pub const fn limit() -> usize {
        Self::LIMIT
    }

    pub async fn refresh(&mut self) -> usize {
        self.servers.clear();
        0
    }
}

trait Api {
    type Output;
    const VERSION: u8;

    fn call(&self, arg: u8) -> Self::Output;

    #[trace("api")]
    fn provided(&self) -> u8 {
        Self::VERSION
    }
}

#[trace_impl("api", hide_args = true, hide_result = false)]
impl Api for Manager {
    type Output = Option<usize>;
    const VERSION: u8 = 2;

    fn call(&self, arg: u8) -> Self::Output {
        Some(arg as usize + self.servers.len())
    }
}

macro_rules! make_method {
    () => {
        fn generated(&self) {}
    };
}

#[trace_impl("rpc")]
impl Manager {
    make_method!();
}

fn main() {
    osprofiler::profiler::init("SECRET_KEY", None, None);
    let mut m = Manager::new();
    m.add("vm".to_owned()).unwrap().push('1');
    assert_eq!(m._private(), 1);
    assert!(!m.hot());
    assert_eq!(m.own(), 1);
    assert_eq!(m.call(1), Some(2));
    assert_eq!(m.provided(), 2);
    assert_eq!(Manager::limit(), 10);
    m.generated();
    assert_eq!(Box::new(m).consume(), ["vm1"]);
    let _ = Manager::new().refresh();
    osprofiler::profiler::clean();
}
