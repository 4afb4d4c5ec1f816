"""Bounce classification shared by the stages that read failures: the bouncer (suppressions,
DSNs) and the reputation stage (a sender's hard bounce and block rates).

    rules.py     the operator-editable rule table (TOML) and the classes
    classify.py  one pure function from a failure's codes and text to a class
"""
