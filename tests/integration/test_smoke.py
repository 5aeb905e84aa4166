from tests.conftest import login, make_account


def test_natural_person_signs_in_and_sees_masked_profile(app, client):
    make_account(document_type="resident_id", document_number="11010519491231002X",
                 identity_region="mainland")
    response = login(app, client, "zhang_san")
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/center/profile").get_data(as_text=True)
    assert "zhang_san" in page
    assert "110105********002X" in page
    assert "11010519491231002X" not in page
    assert "138****8000" in page
