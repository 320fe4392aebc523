//! The admin request decoder and what the node does with a decoded request before the role
//! check: `admin::connection` reads one length-prefixed frame (cap 16 MiB) and decodes an
//! `AdminRequest`; `admin::dispatch` then takes the call's name and allowed roles
//! (`admin::call_rules`) and its audit target (`calls::target`) and checks the role. Also the
//! client side: `trm-admin` decodes an `AdminResponse` and parses its JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use trm_node::admin::{call_rules, Role};
use trm_proto::admin::{AdminRequest, AdminResponse};
use trm_proto::frame;

const ROLES: [Role; 4] = [
    Role::Operator,
    Role::Officer,
    Role::Supervisor,
    Role::Auditor,
];

fn before_role_check(req: AdminRequest) {
    let Some(call) = req.call else {
        return;
    };
    let (name, roles) = call_rules(&call);
    assert!(
        !name.is_empty() && !roles.is_empty(),
        "every call has a name and a role"
    );
    let target = trm_node::admin::calls::target(&call);
    let _ = target.len();
    for role in ROLES {
        if !roles.contains(&role) {
            let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
            let _ = format!(
                "`{name}` needs role {} (you are {})",
                names.join(" or "),
                role.name()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = frame::decode::<AdminRequest>(data, 16 << 20) {
        before_role_check(req);
    }
    if let Ok(req) = AdminRequest::decode(data) {
        before_role_check(req);
    }
    if let Ok(resp) = frame::decode::<AdminResponse>(data, 16 << 20) {
        if resp.ok {
            let _ = serde_json::from_str::<serde_json::Value>(&resp.json);
        }
    }
});
