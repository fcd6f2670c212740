// Starts the OptoVault client under a strict Content-Security-Policy (no inline script).
// Trunk writes the generated file names into this script tag's data attributes, and emits
// <link rel="preload"> / <link rel="modulepreload"> tags carrying their integrity hashes; the wasm
// is fetched with that hash so the browser refuses a file that was changed.
const tag = document.querySelector('script[data-js][data-wasm]');
const boot = document.getElementById('boot');

function integrityOf(href) {
    for (const link of document.querySelectorAll('link[rel="preload"][integrity], link[rel="modulepreload"][integrity]')) {
        if (new URL(link.href, location.href).pathname === new URL(href, location.href).pathname) {
            return link.integrity;
        }
    }
    return undefined;
}

async function start() {
    const jsUrl = tag.dataset.js;
    const wasmUrl = tag.dataset.wasm;
    const bindings = await import(jsUrl);
    const integrity = integrityOf(wasmUrl);
    const wasm = fetch(wasmUrl, integrity ? { integrity, credentials: 'same-origin' } : { credentials: 'same-origin' });
    await bindings.default({ module_or_path: wasm });
    if (boot) {
        boot.remove();
    }
}

start().catch(() => {
    const msg = document.getElementById('boot-message');
    if (msg) {
        msg.textContent = 'OptoVault could not start in this browser. Reload the page to try again.';
        msg.className = 'boot-error';
    }
});
