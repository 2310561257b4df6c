//! The REST calls the benchmarks make, through one pooled HTTP client.

use serde_json::{Value, json};

pub const PASSWORD: &str = "bench-password-1";

/// Ticket texts the rules engine files under different categories and skills.
const TICKETS: [(&str, &str); 6] = [
    (
        "Cannot log in",
        "Since this morning the login page says my password is wrong, and the reset mail never arrives.",
    ),
    (
        "Charged twice",
        "My credit card was billed twice for the March invoice. Please refund one of the payments.",
    ),
    (
        "Export crashes",
        "The app crashes with an error 500 whenever I export the monthly report to CSV.",
    ),
    (
        "Slow dashboard",
        "The dashboard takes more than a minute to load; the database seems to time out.",
    ),
    (
        "Dark mode please",
        "It would be great to have a dark mode option in the settings page.",
    ),
    (
        "Where is the API key?",
        "How do I find the API key for the integration with our React frontend?",
    ),
];

#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(base: String) -> Api {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .expect("HTTP client");
        Api { http, base }
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Registers an account and returns its id and token (the one argon2 hash it costs).
    pub async fn register(&self, email: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "name": "Bench"}),
            )
            .await;
        assert_eq!(status, 201, "register {email}: {body}");
        (
            body["user"]["id"].as_str().expect("user id").to_owned(),
            body["token"].as_str().expect("token").to_owned(),
        )
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/api/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "login {email}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn patch_user(&self, admin: &str, id: &str, body: Value) {
        let res = self
            .http
            .patch(format!("{}/api/users/{id}", self.base))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert!(res.status().is_success(), "PATCH user: {}", res.status());
    }

    /// Opens ticket number `i`; true on a 201.
    pub fn create_ticket(
        &self,
        token: &str,
        i: usize,
    ) -> impl Future<Output = bool> + Send + use<> {
        let (title, description) = TICKETS[i % TICKETS.len()];
        let req = self
            .http
            .post(format!("{}/api/tickets", self.base))
            .bearer_auth(token)
            .json(&json!({"title": format!("{title} #{i}"), "description": description}));
        async move {
            match req.send().await {
                Ok(res) if res.status() == 201 => res.bytes().await.is_ok(),
                _ => false,
            }
        }
    }

    /// Every ticket, as an admin sees them.
    pub async fn all_tickets(&self, admin: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/api/tickets?limit=100", self.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let body: Value = self
                .http
                .get(url)
                .bearer_auth(admin)
                .send()
                .await
                .expect("list tickets")
                .json()
                .await
                .expect("ticket list");
            if let Some(page) = body["tickets"].as_array() {
                all.extend(page.iter().cloned());
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return all,
            }
        }
    }
}
