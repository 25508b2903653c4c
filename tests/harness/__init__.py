"""One harness for the tests and bench/: what both start and run, free of pytest.

    ports             free_port, free_ports, wait_for_port
    servers           moto_server, seaweedfs_server, pushgateway_server (context managers yielding a
                      URL; Unavailable when the program is missing), s3_env, s3_client, create_bucket
    archiver_process  archiver_env, process_env, run_subprocess, start_run, the daemon (start_daemon,
                      wait_for_event, stop_daemon, scrape); each command can run another checkout's code

The emulator itself runs in process: `with Emulator(EmulatorConfig(...)) as emu:` (archiver.emulator).
Test-only conveniences (fast emulator defaults, log parsing, what was archived) stay in tests/helpers.py.
"""
