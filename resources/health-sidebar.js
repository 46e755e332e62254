/*
 * The "IIoT auth" sidebar tab and the health line of the config nodes' dialogs,
 * served by Node-RED at resources/node-red-contrib-iiot-auth/health-sidebar.js.
 * Every node's HTML loads it; it registers itself once.
 *
 * It reads the runtime's health model (docs/health.md, the contract of
 * src/nodes/health): GET iiot-auth/health for the whole list (when the tab is
 * shown and after a deploy), then live changes over Node-RED's comms (topic
 * iiot-auth/health: an entry, or { id, removed: true }). Nothing polls the
 * server: a light timer only re-renders the relative times while the tab is
 * visible. The actions (renew, rotate) are POST routes behind the write
 * permission; the buttons show only for a user who has it.
 *
 * The entries carry no secret (the runtime's contract); this code shows only
 * what it gets, and inserts every text as text, never as HTML.
 */
(() => {
    'use strict';
    if (window.IiotAuthHealth) {
        return;
    }

    const TAB = 'iiot-auth-health';
    const ACTION = 'iiot-auth:show-health-tab';
    const TOPIC = 'iiot-auth/health';
    const ROUTE = 'iiot-auth/health';
    // Strings shared by every node of the package live in the token node's catalog.
    const t = (key, substitutions) => RED._(`node-red-contrib-iiot-auth/iiot-token:health.${key}`, substitutions);
    /** Node-RED's own status dot colours (--red-ui-node-status-colors-*) per state. */
    const STATE_COLOUR = {
        ok: 'green',
        renewing: 'blue',
        'backing-off': 'yellow',
        failing: 'red',
        'locked-out': 'red',
        'not-configured': 'grey',
    };
    /** How often the relative times are re-rendered while the tab is visible. */
    const TICK_MS = 15_000;

    /** The entries by config node id, as last read or received. */
    const entries = new Map();
    /** Functions told of each entry received live (the open dialog's health line). */
    const listeners = new Set();
    /** "<id>/<action>" of the actions whose request runs (their buttons are disabled). */
    const running = new Set();
    /** null: not read yet; otherwise the reason the last read failed, or "". */
    let loadError = null;
    let content = null;
    let timer = null;

    const lang = () => RED.i18n?.lang?.() || navigator.language || 'en-US';

    /** "in 42 minutes", "3 hours ago", in the editor's language. */
    function relative(iso) {
        const ms = Date.parse(iso) - Date.now();
        if (!Number.isFinite(ms)) {
            return '';
        }
        const seconds = Math.round(ms / 1000);
        const abs = Math.abs(seconds);
        const format = new Intl.RelativeTimeFormat(lang(), { numeric: 'auto' });
        if (abs < 60) {
            return format.format(seconds, 'second');
        }
        if (abs < 3600) {
            return format.format(Math.round(seconds / 60), 'minute');
        }
        if (abs < 48 * 3600) {
            return format.format(Math.round(seconds / 3600), 'hour');
        }
        return format.format(Math.round(seconds / 86400), 'day');
    }
    function absolute(iso) {
        const date = new Date(iso);
        return Number.isFinite(date.getTime()) ? date.toLocaleString(lang()) : '';
    }
    /** The runtime's English lines name times in ISO 8601: shown in the editor's local time. */
    function localTimes(text) {
        return (text || '').replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g, (iso) => {
            const date = new Date(iso);
            // Today's: the time alone.
            return date.toDateString() === new Date().toDateString() ? date.toLocaleTimeString(lang()) : absolute(iso) || iso;
        });
    }
    /** A time shown relative, the absolute one in its tooltip; re-rendered by the timer. */
    function time(iso) {
        return $('<span class="iiot-auth-health-time">').attr('data-time', iso).attr('title', absolute(iso)).text(relative(iso));
    }
    function refreshTimes(root) {
        $(root)
            .find('.iiot-auth-health-time')
            .each(function () {
                $(this).text(relative($(this).attr('data-time')));
            });
    }

    function dot(state) {
        return $('<span class="iiot-auth-health-dot">').addClass(`iiot-auth-health-dot-${STATE_COLOUR[state] || 'grey'}`);
    }
    /** The state's word in the editor's language (the runtime's stateText is one English line, shown too). */
    function stateWord(state) {
        return STATE_COLOUR[state] ? t(`state.${state}`) : state;
    }
    /** "CODE: message", with the time of the failure. */
    function failure(f) {
        return $('<span>')
            .append($('<code class="iiot-auth-health-code">').text(f.code))
            .append(document.createTextNode(` ${localTimes(f.message)} `))
            .append($('<span class="iiot-auth-health-when">').append('(').append(time(f.at)).append(')'));
    }
    /** The node's name, else its label in the editor (as the workspace shows it), else its id. */
    function labelOf(entry) {
        const node = entry.name ? null : RED.nodes.node(entry.id);
        return entry.name || (node ? RED.utils.getNodeLabel(node, entry.id) : entry.id);
    }

    function sorted() {
        const key = (e) => [e.platformLabel || '', e.name || '', e.id];
        return Array.from(entries.values()).sort((a, b) => {
            const [ka, kb] = [key(a), key(b)];
            for (let i = 0; i < ka.length; i++) {
                const c = ka[i].localeCompare(kb[i]);
                if (c) {
                    return c;
                }
            }
            return 0;
        });
    }

    // ---- the sidebar tab ----

    function row(table, label, value) {
        $('<tr class="iiot-auth-health-detail">').append($('<td>').text(label)).append($('<td>').append(value)).appendTo(table);
    }

    /** One config node's section of the table: a header row (state, name, platform) and its details. */
    function renderEntry(entry) {
        const body = $('<tbody class="iiot-auth-health-entry">').attr({ 'data-id': entry.id, 'data-state': entry.state });
        const header = $('<tr class="iiot-auth-health-header">').attr('title', t('open')).appendTo(body);
        const cell = $('<td colspan="2">').appendTo(header);
        $('<div class="iiot-auth-health-title">')
            .append(dot(entry.state))
            .append($('<span class="iiot-auth-health-name">').text(labelOf(entry)))
            .append($('<span class="iiot-auth-health-platform">').text(entry.platformLabel))
            .appendTo(cell);
        // The runtime's line says why (in English); for "ok" the rows below say it all, so it is the tooltip only.
        const quiet = entry.state === 'ok';
        $('<div class="iiot-auth-health-state">')
            .attr('title', quiet ? localTimes(entry.stateText) : null)
            .append($('<span class="iiot-auth-health-state-word">').text(stateWord(entry.state)))
            .append(entry.stateText && !quiet ? $('<span class="iiot-auth-health-state-text">').text(` · ${localTimes(entry.stateText)}`) : null)
            .appendTo(cell);

        if (entry.tokenExpiresAt) {
            row(body, t('label.tokenExpires'), time(entry.tokenExpiresAt));
        }
        if (entry.renewAt) {
            row(body, t('label.renewAt'), time(entry.renewAt));
        }
        if (entry.retryAt) {
            row(body, t('label.retryAt'), time(entry.retryAt));
        }
        if (entry.lastSuccessAt) {
            row(body, t('label.lastSuccess'), time(entry.lastSuccessAt));
        }
        if (entry.lastFailure) {
            row(body, t('label.lastFailure'), failure(entry.lastFailure));
        }
        const agent = entry.agent;
        if (agent) {
            row(
                body,
                t('label.agent'),
                $('<span>').text(`${agent.clientId} · ${agent.profile} · ${agent.onboarded ? t('agent.onboarded') : t('agent.notOnboarded')}`),
            );
            if (agent.clientSecretExpiresAt) {
                row(body, t('label.secretExpires'), time(agent.clientSecretExpiresAt));
            }
            if (agent.rotateAt) {
                row(body, t('label.rotateAt'), time(agent.rotateAt));
            }
            if (agent.lastRotationAt) {
                row(body, t('label.lastRotation'), time(agent.lastRotationAt));
            }
            if (agent.lastRotationFailure) {
                row(body, t('label.lastRotationFailure'), failure(agent.lastRotationFailure));
            }
            if (agent.waitingForReplicas) {
                const wait = agent.waitingForReplicas;
                row(body, t('label.waitingForReplicas'), failure({ code: wait.code, message: wait.message, at: wait.since }));
            }
            if (agent.store) {
                row(
                    body,
                    t('label.store'),
                    $('<span class="iiot-auth-health-store">').text(
                        agent.store.kind === 'file' ? `${t('store.file')} ${agent.store.where}` : agent.store.where,
                    ),
                );
            }
            if (agent.lockHolder) {
                row(body, t('label.lockHolder'), $('<span>').text(agent.lockHolder));
            }
            if (agent.adoption) {
                row(
                    body,
                    t('label.adoption'),
                    $('<span>')
                        .append(time(agent.adoption.at))
                        .append(document.createTextNode(` · ${agent.adoption.note}`)),
                );
            }
        }
        // The counts since start in one small line, what each means in its tooltip; then the actions.
        const footer = $('<td colspan="2">').appendTo($('<tr class="iiot-auth-health-footer">').appendTo(body));
        $('<div class="iiot-auth-health-counts">')
            .attr('title', t('counts.title'))
            .text(t('counts.line', entry.counts || {}))
            .appendTo(footer);
        footer.append(actionButtons(entry));
        return body;
    }

    function actionButtons(entry) {
        const box = $('<div class="iiot-auth-health-buttons">');
        if (!RED.user.hasPermission('iiot-auth.write')) {
            return box;
        }
        const button = (action, icon) => {
            const busy = running.has(`${entry.id}/${action}`);
            $('<button type="button" class="red-ui-button red-ui-button-small">')
                .attr('data-action', action)
                .prop('disabled', busy)
                .append($('<i class="fa">').addClass(busy ? 'fa-spinner fa-spin' : icon))
                .append(document.createTextNode(` ${t(`action.${action}`)}`))
                .on('click', (event) => {
                    event.stopPropagation();
                    act(entry.id, action);
                })
                .appendTo(box);
        };
        if (entry.actions?.renew) {
            button('renew', 'fa-refresh');
        }
        if (entry.actions?.rotate) {
            button('rotate', 'fa-retweet');
        }
        return box;
    }

    function render() {
        if (!content) {
            return;
        }
        const list = content.find('.iiot-auth-health-list').empty();
        if (loadError === null) {
            return;
        }
        if (loadError) {
            $('<div class="red-ui-search-empty iiot-auth-health-empty">').text(loadError).appendTo(list);
            return;
        }
        if (entries.size === 0) {
            $('<div class="red-ui-search-empty iiot-auth-health-empty">').text(t('empty')).appendTo(list);
            return;
        }
        // How many are in each state, the troubled ones first: a long list's problems at a glance.
        const summary = $('<div class="iiot-auth-health-summary">').appendTo(list);
        ['locked-out', 'failing', 'backing-off', 'not-configured', 'renewing', 'ok'].forEach((state) => {
            const n = Array.from(entries.values()).filter((e) => e.state === state).length;
            if (n) {
                $('<span class="iiot-auth-health-summary-item">')
                    .attr('data-state', state)
                    .append(dot(state))
                    .append(document.createTextNode(` ${n} ${stateWord(state)}`))
                    .appendTo(summary);
            }
        });
        // Fixed layout takes the widths from the first row, a header spanning both columns: hence the colgroup.
        const table = $('<table class="red-ui-info-table iiot-auth-health-table">')
            .append('<colgroup><col class="iiot-auth-health-col-label"><col></colgroup>')
            .appendTo(list);
        sorted().forEach((entry) => {
            table.append(renderEntry(entry));
        });
    }

    /** Why a request to the runtime failed, in its own words when it sent some. */
    function reasonOf(xhr) {
        const body = xhr.responseJSON;
        if (body && typeof body.message === 'string') {
            return body.code ? `${body.code}: ${body.message}` : body.message;
        }
        if (xhr.status === 401 || xhr.status === 403) {
            return t('errors.permission');
        }
        return xhr.status ? `HTTP ${xhr.status} ${xhr.statusText || ''}`.trim() : t('errors.unreachable');
    }

    /** Reads the whole list; callback(entries or null). */
    function fetchAll(callback) {
        $.ajax({ url: ROUTE, type: 'GET', dataType: 'json', cache: false })
            .done((data) => {
                entries.clear();
                (data?.credentials || []).forEach((e) => {
                    entries.set(e.id, e);
                });
                loadError = '';
                render();
                callback?.(entries);
            })
            .fail((xhr) => {
                loadError = t('errors.load', { reason: reasonOf(xhr) });
                render();
                callback?.(null);
            });
    }

    function act(id, action) {
        const key = `${id}/${action}`;
        if (running.has(key)) {
            return;
        }
        const entry = entries.get(id);
        const name = entry ? labelOf(entry) : id;
        running.add(key);
        render();
        $.ajax({
            url: `${ROUTE}/${encodeURIComponent(id)}/${action}`,
            type: 'POST',
            contentType: 'application/json',
            data: '{}',
            dataType: 'json',
        })
            .done((updated) => {
                if (updated && updated.id === id) {
                    entries.set(id, updated);
                }
                RED.notify($('<div>').text(t(`notify.${action}-done`, { name: name })), { type: 'success', timeout: 3000 });
            })
            .fail((xhr) => {
                RED.notify($('<div>').text(t(`notify.${action}-failed`, { name: name, reason: reasonOf(xhr) })), { type: 'error', timeout: 8000 });
            })
            .always(() => {
                running.delete(key);
                render();
            });
    }

    /** A live change from the runtime. */
    function received(_topic, message) {
        if (!message || typeof message.id !== 'string') {
            return;
        }
        if (message.removed) {
            entries.delete(message.id);
        } else if (loadError === '') {
            entries.set(message.id, message);
        }
        listeners.forEach((listener) => {
            listener(message);
        });
        if (visible()) {
            render();
        }
    }

    function visible() {
        return !!content && content.is(':visible');
    }

    /** While the tab is visible, the relative times move on; the timer stops itself when it is not. */
    function startTimer() {
        if (timer) {
            return;
        }
        timer = setInterval(() => {
            if (!visible()) {
                clearInterval(timer);
                timer = null;
                return;
            }
            refreshTimes(content);
        }, TICK_MS);
    }

    function onShow() {
        fetchAll();
        startTimer();
    }

    function openConfig(id) {
        const node = RED.nodes.node(id);
        if (!node) {
            RED.notify($('<div>').text(t('errors.not-in-editor', { id: id })), { type: 'warning', timeout: 5000 });
            return;
        }
        RED.editor.editConfig('', node.type, node.id);
    }

    function addStyles() {
        $('<style id="iiot-auth-health-style">')
            .text(
                [
                    '.iiot-auth-health-content { height: 100%; overflow-y: auto; box-sizing: border-box; padding: 0 8px; }',
                    // Set here, not left to red-ui-info-table: its layout and margins differ between Node-RED versions, and an
                    // automatic layout lets a long error code push the value column past the sidebar's edge.
                    '.iiot-auth-health-table { font-size: 13px; table-layout: fixed; width: 100%; margin: 0 0 10px; }',
                    '.iiot-auth-health-table tbody.iiot-auth-health-entry { cursor: pointer; }',
                    '.iiot-auth-health-table tbody.iiot-auth-health-entry:hover { background: var(--red-ui-secondary-background-hover); }',
                    '.iiot-auth-health-table tr.iiot-auth-health-header td { padding: 10px 3px 4px; border-top: 2px solid var(--red-ui-secondary-border-color); }',
                    '.iiot-auth-health-table tr.iiot-auth-health-detail td { padding: 1px 3px; vertical-align: top; overflow-wrap: anywhere; }',
                    '.iiot-auth-health-table tr.iiot-auth-health-detail td:first-child { color: var(--red-ui-secondary-text-color); }',
                    '.iiot-auth-health-col-label { width: 42%; }',
                    '.iiot-auth-health-table tr.iiot-auth-health-footer td { padding: 3px 3px 8px; }',
                    '.iiot-auth-health-counts { font-size: 12px; line-height: 16px; }',
                    '.iiot-auth-health-buttons:not(:empty) { margin-top: 5px; }',
                    '.iiot-auth-health-buttons button { margin-right: 6px; }',
                    '.iiot-auth-health-summary { display: flex; flex-wrap: wrap; gap: 4px 12px; padding: 8px 3px 6px; }',
                    '.iiot-auth-health-summary-item { display: inline-flex; align-items: center; gap: 2px; }',
                    '.iiot-auth-health-title { display: flex; align-items: center; gap: 6px; }',
                    '.iiot-auth-health-name { font-weight: 600; color: var(--red-ui-primary-text-color); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }',
                    '.iiot-auth-health-platform { margin-left: auto; flex-shrink: 0; font-size: 12px; color: var(--red-ui-secondary-text-color); }',
                    '.iiot-auth-health-state { margin: 2px 0 0 16px; color: var(--red-ui-secondary-text-color); overflow-wrap: anywhere; }',
                    '.iiot-auth-health-state-word { font-weight: 600; color: var(--red-ui-primary-text-color); }',
                    '.iiot-auth-health-dot { display: inline-block; flex-shrink: 0; width: 10px; height: 10px; border-radius: 50%; border: 1px solid transparent; box-sizing: border-box; }',
                    '.iiot-auth-health-dot-green { background: var(--red-ui-node-status-colors-green); border-color: var(--red-ui-node-status-colors-green); }',
                    '.iiot-auth-health-dot-blue { background: var(--red-ui-node-status-colors-blue); border-color: var(--red-ui-node-status-colors-blue); }',
                    '.iiot-auth-health-dot-yellow { background: var(--red-ui-node-status-colors-yellow); border-color: #c9a800; }',
                    '.iiot-auth-health-dot-red { background: var(--red-ui-node-status-colors-red); border-color: var(--red-ui-node-status-colors-red); }',
                    '.iiot-auth-health-dot-grey { background: var(--red-ui-node-status-colors-grey); border-color: #aaa; }',
                    '.iiot-auth-health-code { font-size: 12px; padding: 0 2px; white-space: normal; overflow-wrap: anywhere; word-break: break-all; }',
                    '.iiot-auth-health-when, .iiot-auth-health-counts { color: var(--red-ui-secondary-text-color); }',
                    '.iiot-auth-health-line { display: flex; align-items: baseline; gap: 6px; padding: 6px 8px; margin-bottom: 12px;',
                    '  border: 1px solid var(--red-ui-secondary-border-color); border-radius: 4px; background: var(--red-ui-secondary-background); }',
                    '.iiot-auth-health-line .iiot-auth-health-dot { align-self: center; }',
                    '.iiot-auth-health-line-text { overflow-wrap: anywhere; }',
                ].join('\n'),
            )
            .appendTo('head');
    }

    function addTab() {
        content = $('<div class="iiot-auth-health-content">');
        $('<div class="iiot-auth-health-list">').appendTo(content);
        content.on('click', 'tbody.iiot-auth-health-entry', function (event) {
            if ($(event.target).closest('button').length === 0) {
                openConfig($(this).attr('data-id'));
            }
        });
        const toolbar = $('<div class="iiot-auth-health-toolbar">');
        $('<span class="button-group">')
            .append(
                $('<button type="button" class="red-ui-footer-button iiot-auth-health-reload">')
                    .attr('title', t('reload'))
                    .append('<i class="fa fa-refresh"></i>')
                    .on('click', () => fetchAll()),
            )
            .appendTo(toolbar);
        RED.sidebar.addTab({
            id: TAB,
            label: t('tab.label'),
            name: t('tab.name'),
            // The package's padlock (its nodes' icon) as a mask in the theme's colour; Font Awesome's where an image cannot be used.
            icon: 'icons/node-red-contrib-iiot-auth/iiot-auth.svg',
            iconClass: 'fa fa-lock',
            content: content,
            toolbar: toolbar,
            enableOnEdit: true,
            action: ACTION,
            onchange: onShow,
        });
        RED.actions.add(ACTION, () => {
            RED.sidebar.show(TAB);
        });
    }

    // ---- the health line of a config node's dialog ----

    /**
     * Adds a read-only line to the open config dialog of node `id` (its state,
     * token expiry and last failure) and keeps it current while the dialog is
     * open. Returns a function that stops it (call it when the dialog closes).
     */
    function dialogLine(id) {
        const form = $('#node-config-dialog-edit-form');
        if (!form.length || !RED.user.hasPermission('iiot-auth.read')) {
            return () => {};
        }
        form.find('.iiot-auth-health-line').remove();
        const line = $('<div class="form-row iiot-auth-health-line">').prependTo(form);
        const show = (entry) => {
            line.empty();
            if (!entry) {
                line.append(dot('not-configured')).append($('<span class="iiot-auth-health-line-text">').text(t('dialog.not-deployed')));
                return;
            }
            const quiet = entry.state === 'ok';
            const text = $('<span class="iiot-auth-health-line-text">')
                .attr('title', quiet ? localTimes(entry.stateText) : null)
                .append($('<strong>').text(stateWord(entry.state)))
                .append(document.createTextNode(entry.stateText && !quiet ? ` · ${localTimes(entry.stateText)}` : ''));
            if (entry.tokenExpiresAt) {
                text.append(document.createTextNode(` · ${t('dialog.token-expires')} `)).append(time(entry.tokenExpiresAt));
            }
            if (entry.lastFailure) {
                text.append($('<br>'))
                    .append(document.createTextNode(`${t('label.lastFailure')}: `))
                    .append(failure(entry.lastFailure));
            }
            line.append(dot(entry.state)).append(text);
        };
        let open = true;
        const listener = (message) => {
            if (open && message.id === id) {
                show(message.removed ? null : message);
            }
        };
        listeners.add(listener);
        $.ajax({ url: ROUTE, type: 'GET', dataType: 'json', cache: false })
            .done((data) => {
                if (open) {
                    show((data?.credentials || []).find((e) => e.id === id));
                }
            })
            .fail(() => {
                line.remove();
            });
        return () => {
            open = false;
            listeners.delete(listener);
        };
    }

    addStyles();
    addTab();
    RED.comms.subscribe(TOPIC, received);
    // After a deploy the list may have changed as a whole: read it again if the tab is shown (else when it is).
    RED.events.on('deploy', () => {
        if (visible()) {
            fetchAll();
        }
    });

    window.IiotAuthHealth = { dialogLine: dialogLine, show: () => RED.actions.invoke(ACTION) };
})();
