# hal: placeholder fragment until the module lands (see its issue).
