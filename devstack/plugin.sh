#!/bin/bash
#
# plugin.sh - devstack plugin dispatcher for trovestack (Trove server,
# guest images, test environment).  The work is in lib/trove.

# shellcheck source=devstack/lib/trove
source "$(dirname "${BASH_SOURCE[0]}")/lib/trove"

if is_service_enabled trove; then
    if [[ "$1" == "stack" && "$2" == "pre-install" ]]; then
        # Nothing is installed yet: fail now on a bad setting.
        echo_summary "Checking Trove settings"
        check_trove_settings

    elif [[ "$1" == "stack" && "$2" == "install" ]]; then
        # Layer 1 and 2 projects and their dependencies are installed.
        echo_summary "Installing Trove"
        install_trove
        install_trove_client
        install_trovestack
        if is_service_enabled horizon; then
            echo_summary "Installing Trove's dashboard panels"
            install_trove_dashboard
        fi

    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        # Keystone is running; the other services are configured, not
        # started.
        echo_summary "Configuring Trove"
        create_trove_accounts
        configure_trove
        init_trove

    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        # Glance, Nova, Neutron and the other layer 1 and 2 services run.
        echo_summary "Provisioning Trove: images, datastores, networks"
        start_trove_api
        provision_trove
        echo_summary "Starting Trove"
        restart_trove
        init_trove_test_environment

    elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
        # Everything runs; tempest.conf exists when tempest is enabled.
        if is_service_enabled tempest; then
            echo_summary "Configuring tempest for Trove"
            configure_tempest_for_trove
        fi
    fi

    if [[ "$1" == "unstack" ]]; then
        # Called before the other services are stopped: the cloud answers.
        if [[ "$TROVE_UNSTACK_REMOVES_RESOURCES" == "True" ]]; then
            echo_summary "Removing Trove's images, datastores and flavors"
            remove_trove_cloud_resources
        fi
        echo_summary "Stopping Trove"
        stop_trove
        stop_trove_registry
    fi

    if [[ "$1" == "clean" ]]; then
        # unstack has run and the cloud is down: remove this plugin's
        # files on this host only.
        echo_summary "Removing Trove's state and configuration files"
        cleanup_trove
        if is_service_enabled horizon; then
            cleanup_trove_dashboard
        fi
    fi
fi
