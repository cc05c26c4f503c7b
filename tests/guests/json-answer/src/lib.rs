//! A hook of the `credentials-exchange-json` world (the event and the answer as JSON text)
//! whose answer the test chooses: the client's metadata `answer`, returned verbatim, or by
//! default changes that echo the event (scope plus `json`, and claims of several JSON types).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "hookd:hooks/credentials-exchange-json",
});

use serde_json::{Value, json};

struct JsonAnswer;

impl Guest for JsonAnswer {
    fn exchange_json(event: String) -> String {
        let event: Value = serde_json::from_str(&event).expect("the host sends JSON");
        if let Some(answer) = event["client"]["metadata"]["answer"].as_str() {
            return answer.to_owned();
        }
        let mut scope: Vec<Value> = event["scope"].as_array().cloned().unwrap_or_default();
        scope.push(json!("json"));
        json!({"changes": {
            "scope": scope,
            "claims": {
                "https://example.com/client": event["client"]["id"],
                "https://example.com/request": event["context"]["request"],
                "https://example.com/n": 7,
            },
        }})
        .to_string()
    }
}

export!(JsonAnswer);
