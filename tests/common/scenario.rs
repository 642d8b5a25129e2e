//! The three-dialect scenario most proxy tests start from, in one line:
//! `let s = Scenario::start().await;` starts an OpenAI, an Anthropic and a Gemini mock,
//! a gateway routing to them, and a member `alice` with a gateway key.
//!
//! | upstream | kind | mock | keys | models |
//! |---|---|---|---|---|
//! | `o` | openai | `s.openai` | `sk-o` | `gpt-*`, `o4-*`, `text-embedding-*` |
//! | `a` | anthropic | `s.anthropic` | `sk-a` | `claude-*` |
//! | `g` | gemini | `s.gemini` | `sk-g` | `gemini-*` |
//!
//! Any other model has no route (404). [`Scenario::start_with`] adds to the config
//! (prices, users, settings) before the gateway starts.

use super::config::{GatewayBuilder, Upstream};
use super::gateway::Gateway;
use super::mock::MockUpstream;

pub struct Scenario {
    pub openai: MockUpstream,
    pub anthropic: MockUpstream,
    pub gemini: MockUpstream,
    pub gw: Gateway,
    /// A gateway key of `alice` (member), with no limits.
    pub key: String,
}

impl Scenario {
    pub async fn start() -> Scenario {
        Scenario::start_with(|config| config).await
    }

    /// The scenario, its config passed through `configure` first.
    pub async fn start_with(configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Scenario {
        let openai = MockUpstream::start().await;
        let anthropic = MockUpstream::start().await;
        let gemini = MockUpstream::start().await;
        let config = GatewayBuilder::new()
            .upstream(Upstream::openai("o", &openai).keys(&["sk-o"]))
            .upstream(Upstream::anthropic("a", &anthropic).keys(&["sk-a"]))
            .upstream(Upstream::gemini("g", &gemini).keys(&["sk-g"]))
            .route(&["claude-*"], &["a"])
            .route(&["gemini-*"], &["g"])
            .route(&["gpt-*", "o4-*", "text-embedding-*"], &["o"]);
        let gw = configure(config).start_with_user("alice");
        let key = gw.create_key("alice", &[]);
        Scenario {
            openai,
            anthropic,
            gemini,
            gw,
            key,
        }
    }
}
