// File choosers of the Data and Batch pages: Dash has no <input type="file"> component (dcc.Upload reads the
// whole file into memory as base64), so a plain one is put into each holder whenever a page draws it. The
// pages' clientside callbacks (dash_ui/uploads.py upload_script) send the chosen File as a request body. On
// the Batch page, choosing a file starts the upload at once (it clicks the hidden batch-upload-button).
(function () {
    const CHOOSERS = [
        {holder: "data-file-holder", id: "data-file", accept: ".csv,.tsv,.txt,.gz,.parquet,.xlsx"},
        {holder: "batch-upload", id: "batch-file", accept: ".csv,.txt,.tsv,.gz,.parquet,.xlsx,.xlsm",
         start: "batch-upload-button"},
    ];
    function ensure() {
        for (const chooser of CHOOSERS) {
            const holder = document.getElementById(chooser.holder);
            if (!holder || document.getElementById(chooser.id)) { continue; }
            const input = document.createElement("input");
            input.type = "file";
            input.id = chooser.id;
            input.className = "form-control";
            input.accept = chooser.accept;
            if (chooser.start) {
                input.addEventListener("change", function () {
                    const button = document.getElementById(chooser.start);
                    if (button && input.files && input.files.length) { button.click(); }
                });
            }
            holder.appendChild(input);
        }
    }
    new MutationObserver(ensure).observe(document.documentElement, {childList: true, subtree: true});
    document.addEventListener("DOMContentLoaded", ensure);
})();
