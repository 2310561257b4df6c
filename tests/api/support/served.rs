//! An axum app on a free loopback port, served for as long as its handle lives: the fakes
//! (Gemini, OpenAI, Inngest) and the in-process SDK endpoints the executor tests drive.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A bound port whose app is not built yet, for apps that must be told their own address.
pub struct Listening {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Listening {
    pub async fn bind() -> Listening {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        Listening { listener, addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn serve(self, app: Router) -> Served {
        let Listening { listener, addr } = self;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Served { addr, task }
    }
}

/// The app being served; dropping it stops the server.
pub struct Served {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Served {
    /// Serves `app` on a free loopback port. Must be called inside a tokio runtime.
    pub async fn start(app: Router) -> Served {
        Listening::bind().await.serve(app)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}
