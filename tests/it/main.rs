//! erlmcp's integration tests, in one binary: each of them links the whole runtime, and one link
//! instead of one per file saves minutes on a small machine. Black-box tests start the real
//! `erlmcp` binary (`support::node`), each with a private home (`support::home`); the embedding
//! tests run a tree inside this process, one at a time (`support::tree`). A module per behaviour,
//! named after it: `cargo test --test it plugins_` runs the plugin tests.

mod support;

mod admission_floods_are_answered_or_shed;
mod admission_memory_guard_survives_a_flood;
mod auth_oauth_resource_server;
mod auth_rules_reload_and_step_up;
mod bench_cluster;
mod bench_suite;
mod bench_vs_compares_a_peer_and_a_node_on_the_same_work;
mod cache_l2_is_shared_across_the_cluster;
mod cache_resource_reads_are_served_again;
mod cache_tool_results_are_served_again;
mod cache_visible_in_the_shell_and_a_corrupt_file_is_set_aside;
mod cluster;
mod cluster_forward_lane;
mod cluster_partition_and_heal;
mod cluster_plugins_roll;
mod cluster_tasks_and_broadcasts;
mod embedded_registry_changes_reach_live_sessions;
mod erlmcp_start_runs_the_tree_until_a_signal;
mod fuzz_corpus_replays;
mod hardening_admin_http_bounded;
mod hardening_admin_lines_and_cookie_file;
mod hardening_batches_are_capped;
mod hardening_clients_that_never_read_are_closed_at_write_timeout;
mod hardening_plugins_refused_unless_trusted;
mod hardening_stray_responses_are_dropped;
mod http_hostile_clients_are_bounded;
mod http_smuggling_is_refused;
mod mcp_input_required_rounds_carry_a_sealed_request_state;
mod mcp_over_streamable_http;
mod mcp_over_streamable_http_on_hyper;
mod mcp_over_tcp_and_stdio;
mod mcp_over_websocket;
mod mcp_stateless_2026;
mod plugins_ask_the_client;
mod plugins_broken_ones_are_refused_and_the_node_unharmed;
mod plugins_canary_takes_a_share_and_aborts_on_errors;
mod plugins_dir_is_watched;
mod plugins_hot_swap_under_load;
mod plugins_loaded_from_the_plugin_dir_at_start;
mod plugins_see_the_principal;
mod pool_blocking_tools_are_bounded_by_the_tool_pool;
mod pool_stats_in_the_remote_shell_and_metrics;
mod pool_workers_are_replaced_and_returned;
mod rate_limits_answer_429_and_minus_32000;
mod remote_shell_and_metrics;
mod sessions_hibernate_until_they_hold_something;
mod sessions_keep_their_actor_with_hibernation_off;
mod store_sessions_survive_a_restart;
mod store_visible_in_the_shell_and_metrics;
mod tasks_belong_to_their_principal;
mod tasks_run_as_actors_and_survive_a_restart;
mod tcp_connections_hibernate_while_idle;
mod tls_listeners_serve_over_tls;
mod transport_killed_listeners_come_back_on_their_port;
