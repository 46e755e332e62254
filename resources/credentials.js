/*
 * Shared by the config nodes' editor scripts (nodes/iiot-*.html), served by
 * Node-RED at resources/node-red-contrib-iiot-auth/credentials.js.
 *
 * Whether a config node's required credentials are set, so that a config node
 * without them (an imported example carries none) is marked invalid in the
 * editor, and the action nodes using it show the triangle, before a deploy.
 * The editor itself checks credentials only in the open dialog: it learns
 * them (for a password, only whether it is set) when a dialog opens, and
 * forgets them after a deploy. This script asks the same admin endpoint the
 * dialog does (GET credentials/<type>/<id>), once per config node, keeps the
 * answer as set/not set per field, and validates the node and its users again.
 */
(() => {
    'use strict';
    if (window.IiotAuthCredentials) {
        return;
    }

    /** Config node id -> { field: whether it is set }. */
    const known = {};
    const asked = {};

    function isSet(credentials, field) {
        const value = credentials[field];
        return credentials[`has_${field}`] === true || (typeof value === 'string' && value.trim() !== '');
    }

    function remember(node, fields, credentials) {
        const state = {};
        fields.forEach((field) => {
            state[field] = isSet(credentials, field);
        });
        known[node.id] = state;
    }

    /** Validates the config node and the nodes using it again, and redraws. */
    function revalidate(id) {
        const node = RED.nodes.node(id);
        if (!node) {
            return;
        }
        RED.editor.validateNode(node);
        (node.users || []).forEach((user) => {
            RED.editor.validateNode(user);
        });
        RED.view.redraw(true);
        if (RED.sidebar?.config?.refresh) {
            RED.sidebar.config.refresh();
        }
    }

    function ask(node, fields) {
        if (asked[node.id]) {
            return;
        }
        asked[node.id] = true;
        $.ajax({ url: `credentials/${node.type.replace(/\s+/g, '-')}/${encodeURIComponent(node.id)}`, dataType: 'json' })
            .done((data) => {
                // The dialog may have told us meanwhile: it knows better.
                if (!known[node.id]) {
                    remember(node, fields, data || {});
                }
                revalidate(node.id);
            })
            .fail(() => {
                asked[node.id] = false;
            });
    }

    window.IiotAuthCredentials = {
        /**
         * The required credential fields of a config node that are not set;
         * [] while that is not known yet (the answer then validates it again).
         */
        missing: (node, fields) => {
            if (node.credentials) {
                remember(node, fields, node.credentials);
            }
            if (!known[node.id]) {
                ask(node, fields);
                return [];
            }
            return fields.filter((field) => !known[node.id][field]);
        },
    };
})();
