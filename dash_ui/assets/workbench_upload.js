// The Data page's file chooser: Dash has no <input type="file"> component (dcc.Upload reads the whole file
// into memory as base64), so a plain one is put into #data-file-holder whenever the page draws it. The
// Upload button's clientside callback (dash_ui/pages/data.py) sends the chosen File as a request body.
(function () {
    function ensure() {
        const holder = document.getElementById("data-file-holder");
        if (holder && !document.getElementById("data-file")) {
            const input = document.createElement("input");
            input.type = "file";
            input.id = "data-file";
            input.className = "form-control";
            input.accept = ".csv,.tsv,.txt,.gz,.parquet,.xlsx";
            holder.appendChild(input);
        }
    }
    new MutationObserver(ensure).observe(document.documentElement, {childList: true, subtree: true});
    document.addEventListener("DOMContentLoaded", ensure);
})();
