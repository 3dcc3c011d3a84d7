//! The supervision crate's integration tests, in one binary (one link instead of one per file):
//! a module per group of rules, named after it; docs/supervision.md names each rule's test.

mod support;

mod auto_shutdown_and_dynamic_children;
mod child_management_api;
mod restart_intensity_and_escalation;
mod restart_strategies;
mod start_and_stop_order;
