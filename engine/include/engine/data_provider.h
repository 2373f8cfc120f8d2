// placeholder: header pending
