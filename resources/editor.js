/*
 * The editor code every node of the package shares, served by Node-RED at
 * resources/node-red-contrib-iiot-auth/editor.js (after platforms.js, which
 * scripts/build.js generates from the platform declarations). Each node's
 * HTML keeps only its own form and calls:
 *
 *   IiotAuthEditor.actionNode(type)  the platform select of "get token" and
 *                                    "authenticated request": its defaults,
 *                                    validators and dialog hooks;
 *   IiotAuthEditor.configNode(type)  a config node's validators (required
 *                                    credentials, http(s) URLs), hostOf, its
 *                                    TLS and proxy properties and its dialog
 *                                    hooks (config.hooks(): also the dialog's
 *                                    health line, resources/health-sidebar.js).
 *
 * The rows themselves (a config node's TLS and proxy rows, an action node's
 * row per platform) are in each template, written by scripts/build.js from
 * the platform declarations (scripts/editor-templates.js).
 */
(() => {
    'use strict';
    if (window.IiotAuthEditor) {
        return;
    }

    const PACKAGE = 'node-red-contrib-iiot-auth/';
    // Strings shared by every node of the package live in the token node's catalog.
    const COMMON = `${PACKAGE}iiot-token:common.`;
    const common = (key, substitutions) => RED._(COMMON + key, substitutions);
    const platforms = () => window.IiotAuthPlatforms || [];
    /** A platform's name is its config node's own label. */
    const platformLabel = (p) => RED._(`${PACKAGE + p.type}:label.node`);

    /** "" when the text is not an http(s) URL, else its host. */
    function hostOf(text) {
        try {
            const url = new URL((text || '').trim());
            return /^https?:$/.test(url.protocol) ? url.host : '';
        } catch {
            return '';
        }
    }

    function actionNode(_type) {
        const PLATFORMS = platforms();
        // While the edit dialog is open, validation follows the platform select;
        // otherwise the saved value.
        let editing = null;
        function selectedPlatform(node) {
            const select = $('#node-input-platform');
            return editing === node.id && select.val() ? select.val() : node.platform;
        }

        // Validators take (value, opt): Node-RED shows a returned message only
        // from a validator declared with two parameters.
        const defaults = {
            platform: {
                value: PLATFORMS.length ? PLATFORMS[0].id : '',
                validate: (v, _opt) => PLATFORMS.some((p) => p.id === v) || common('errors.platform'),
            },
        };
        // No `required: false` here: the editor skips the validator of an empty
        // optional property, and an empty one is exactly what must be reported.
        PLATFORMS.forEach((p) => {
            defaults[p.property] = {
                value: '',
                type: p.type,
                validate: function (v, _opt) {
                    if (selectedPlatform(this) !== p.id) {
                        return true;
                    }
                    const config = v && v !== '_ADD_' ? RED.nodes.node(v) : null;
                    if (!config) {
                        return common('errors.missing-config', { platform: platformLabel(p) });
                    }
                    if (config.valid === false) {
                        return common('errors.invalid-config', { platform: platformLabel(p) });
                    }
                    return true;
                },
            };
        });

        return {
            defaults: defaults,
            oneditprepare: function () {
                editing = this.id;
                // Offer the platforms whose config node type is installed (and the
                // saved one in any case, so opening the dialog never changes it).
                const select = $('#node-input-platform').empty();
                PLATFORMS.filter((p) => RED.nodes.getType(p.type) || p.id === this.platform).forEach((p) => {
                    $('<option>').val(p.id).text(platformLabel(p)).appendTo(select);
                });
                select.on('change', function () {
                    $('.iiot-auth-platform-row').hide();
                    $(`.iiot-auth-platform-row[data-platform="${$(this).val()}"]`).show();
                    RED.tray.resize();
                });
                select.val(this.platform || defaults.platform.value).trigger('change');
            },
            oneditsave: () => {
                editing = null;
                // Only the selected platform's config node stays referenced.
                const platform = $('#node-input-platform').val();
                PLATFORMS.filter((p) => p.id !== platform).forEach((p) => {
                    const input = $(`#node-input-${p.property}`);
                    input.val(input.is('select') ? '_ADD_' : '');
                });
            },
            oneditcancel: () => {
                editing = null;
            },
            oneditdelete: () => {
                editing = null;
            },
        };
    }

    function configNode(type) {
        const NS = `${PACKAGE + type}:`;
        const t = (key, substitutions) => RED._(NS + key, substitutions);
        // Required credentials: an imported flow carries none. Outside the open
        // dialog, the name's validator reports them (see credentials.js); in
        // the dialog the credential fields flag themselves.
        let editingCredentials = null;
        function credentialsCheck(node, fields) {
            if (editingCredentials === node.id || !window.IiotAuthCredentials) {
                return true;
            }
            const missing = window.IiotAuthCredentials.missing(node, fields);
            return missing.length === 0 || common('errors.missing-credentials', { fields: missing.map((f) => t(`label.${f}`)).join(', ') });
        }

        return {
            t: t,
            hostOf: hostOf,
            credentialsCheck: credentialsCheck,
            /**
             * Validator: an http:// or https:// URL, without a user name or password in it.
             * Validators take (value, opt): Node-RED shows a returned message only from a
             * validator declared with two parameters.
             */
            httpUrl: (text, _opt) => {
                try {
                    const url = new URL((text || '').trim());
                    if (!/^https?:$/.test(url.protocol) || !url.host) {
                        return t('errors.url');
                    }
                    if (url.username || url.password) {
                        return t('errors.url-credentials');
                    }
                    return true;
                } catch {
                    return t('errors.url');
                }
            },
            /** The TLS and proxy properties every config node has. */
            tlsProxyDefaults: () => ({
                tls: { value: '', type: 'tls-config', required: false, label: t('label.tls') },
                proxy: { value: '', type: 'http proxy', required: false, label: t('label.proxy') },
            }),
            /**
             * The dialog hooks of every config node: they tell the credentials
             * check which node's dialog is open (there the fields flag
             * themselves). `more` adds the node's own oneditprepare, oneditsave,
             * oneditcancel and oneditdelete, called after.
             */
            hooks: (more) => {
                more = more || {};
                const call = (name, node, args) => {
                    if (more[name]) {
                        return more[name].apply(node, args);
                    }
                };
                // The dialog's read-only health line (resources/health-sidebar.js) while it is open.
                let stopHealthLine = () => {};
                const closed = () => {
                    editingCredentials = null;
                    stopHealthLine();
                    stopHealthLine = () => {};
                };
                return {
                    oneditprepare: function (...args) {
                        editingCredentials = this.id;
                        if (window.IiotAuthHealth) {
                            stopHealthLine = window.IiotAuthHealth.dialogLine(this.id);
                        }
                        return call('oneditprepare', this, args);
                    },
                    oneditsave: function (...args) {
                        closed();
                        return call('oneditsave', this, args);
                    },
                    oneditcancel: function (...args) {
                        closed();
                        return call('oneditcancel', this, args);
                    },
                    oneditdelete: function (...args) {
                        closed();
                        return call('oneditdelete', this, args);
                    },
                };
            },
        };
    }

    window.IiotAuthEditor = { actionNode: actionNode, configNode: configNode, hostOf: hostOf };
})();
