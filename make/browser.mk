# make/browser.mk -- `make browser-deps`: Debian's Chromium and its WebDriver, for tests.
#
# tests/browser/ drive the web console in a real headless Chromium through Selenium
# (PyPI, dev extra), with Debian's chromedriver named explicitly: nothing is downloaded at
# run time (Selenium Manager never runs). Installed only when missing; with both there this
# runs two `dpkg -s` and returns.
#
# Included by the top-level Makefile; also works standalone:
#   make -f make/browser.mk browser-deps
#
#   chromium          the browser (/usr/bin/chromium)
#   chromium-driver   its WebDriver (/usr/bin/chromedriver), same version

BROWSER_DEBS := chromium chromium-driver

# Repo root, from this file's location, so the fragment also works standalone.
VIGIL_BROWSER_MK_ROOT := $(patsubst %/,%,$(dir $(abspath $(dir $(lastword $(MAKEFILE_LIST))))))

.PHONY: browser-deps

browser-deps:
	@$(VIGIL_BROWSER_MK_ROOT)/scripts/apt-install-missing.sh $(BROWSER_DEBS)
