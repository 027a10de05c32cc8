import{b as e}from"./chunk-TSMYQXWL.js";var t=document.querySelector('meta[name="berth-session"]')?.content??"";t&&e(t);location.replace("/");
